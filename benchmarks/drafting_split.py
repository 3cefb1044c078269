"""Where shared drafting's time goes with N concurrent requests: prefills against the shared decode
passes. A figure script, not a timed test; run one timing benchmark at a time.

Why: shared drafting (``local/batched_draft.py``) feeds each request the prompt in the first round and
the accepted text the member has not seen yet in later ones (short prefills of several requests in
one packed pass since the seventeenth session, the others one request at a time), then shares the
decode passes. This wraps the functions involved with timers, runs N greedy requests of the
tiny preset at once, and prints their totals (docs/performance.md, "Batched rounds"). It also times the drafts a round makes
on its own (the other drafters after an unsure or doubted lead, not shared across requests) and the
pooled scoring passes, which bounds what sharing those drafts too could gain. Totals are summed
over the requests' threads, so shares of wall can overlap.

    python benchmarks/drafting_split.py --concurrency 8 --max-new-tokens 16
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from batched_ratio import together
from batched_rounds import prompts

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.local import batched_draft, batched_score
from specfuse_core.local.session import LocalSession

seconds: Counter[str] = Counter()
calls: Counter[str] = Counter()


def timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[label] += time.perf_counter() - started
            calls[label] += 1

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()

    LocalSession.prefill_alone = timed("prefills one request at a time (prefill_alone)", LocalSession.prefill_alone)
    batched_draft._packed_prefill = timed("packed prefill passes (several requests each)", batched_draft._packed_prefill)
    batched_draft.decode_rows = timed("shared decode passes (decode_rows)", batched_draft.decode_rows)
    batched_draft.draft_together = timed("shared drafting in all (draft_together)", batched_draft.draft_together)
    LocalSession.draft = timed("drafts inside rounds, one request each (LocalSession.draft, prefill included)", LocalSession.draft)
    batched_score.score_together = timed("pooled scoring passes (score_together)", batched_score.score_together)

    ensemble = SpecFuse.from_preset("tiny", config=EnsembleConfig(max_new_tokens=args.max_new_tokens))
    ensemble.generate("Warm up.", max_new_tokens=4)
    seconds.clear()
    calls.clear()

    _, wall, _ = together(ensemble, prompts(args.concurrency), args.max_new_tokens)
    print(f"{args.concurrency} concurrent requests, {args.max_new_tokens} new tokens each: {wall:.1f} s wall")
    for label, total in seconds.items():
        print(f"  {label}: {total:.1f} s in {calls[label]} calls ({total / wall:.0%} of wall)")


if __name__ == "__main__":
    main()
