"""Requests started together: time to their first segment with and without the scheduler hearing of
requests being opened. A figure script, not a timed test; run one timing benchmark at a time.

Why: N requests started at once (LangChain ``.batch``, a burst at the server) reach their first round
milliseconds apart, since each validates, formats and routes its prompt first. Before the scheduler
heard of requests being opened (``RoundScheduler.announce`` / ``arrived``, called by
``SpecFuse.start``), the first to arrive ran its first round alone while the others waited for it.
This runs the N prompts at once in both modes, alternating, and prints the time to each request's
first segment, the wall time and the number of batches (docs/performance.md, "Requests started together").

    python benchmarks/first_round.py --concurrency 8 --max-new-tokens 64 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from batched_rounds import prompts

from specfuse_core import EnsembleConfig, SpecFuse


def hear_openings(ensemble: SpecFuse, heard: bool) -> None:
    """``heard=False``: the scheduler is told nothing of requests being opened (the old behaviour)."""
    scheduler = ensemble._rounds
    if heard:
        scheduler.__dict__.pop("announce", None)
        scheduler.__dict__.pop("arrived", None)
    else:
        scheduler.announce = lambda: None
        scheduler.arrived = lambda request: None


def at_once(ensemble: SpecFuse, texts: list[str], tokens: int) -> tuple[list[float], float, list[str]]:
    """The prompts at once, one thread each: (seconds to each first segment, wall seconds, texts)."""
    firsts: list[float] = [0.0] * len(texts)
    outputs: list[str] = [""] * len(texts)
    started = time.perf_counter()

    def answer(index: int) -> None:
        stream = ensemble.stream(texts[index], max_new_tokens=tokens)
        for count, _ in enumerate(stream):
            if count == 0:
                firsts[index] = time.perf_counter() - started
        outputs[index] = stream.result().text

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return firsts, time.perf_counter() - started, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    ensemble = SpecFuse.from_preset("tiny", config=EnsembleConfig(max_batch_requests=args.concurrency))
    ensemble.generate("Warm up.", max_new_tokens=8)
    texts = prompts(args.concurrency)
    reference: list[str] | None = None
    for repeat in range(args.repeats):
        for heard in ([False, True] if repeat % 2 == 0 else [True, False]):  # alternate which goes first
            hear_openings(ensemble, heard)
            batches = ensemble._rounds.batches
            firsts, wall, outputs = at_once(ensemble, texts, args.max_new_tokens)
            reference = reference or outputs
            print(f"repeat {repeat + 1}, openings {'heard' if heard else 'not heard'}: first segment mean "
                  f"{statistics.mean(firsts):.1f} s, min {min(firsts):.1f} s, max {max(firsts):.1f} s; wall {wall:.1f} s; "
                  f"{ensemble._rounds.batches - batches} batches; outputs {'the same' if outputs == reference else 'DIFFERENT'}",
                  flush=True)
    hear_openings(ensemble, True)


if __name__ == "__main__":
    main()
