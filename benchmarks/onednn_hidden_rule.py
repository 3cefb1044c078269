"""Which hidden layers go through oneDNN: the previous rule against the current one, in whole passes.

Why: the sixteenth session chose ``OneDnnHiddenLinear``'s rule from products timed one layer at a
time (benchmarks/onednn_hidden_products.py), where a small layer's weights stay in the processor's
cache between repeats. There MKL won on small products, so small layers at few rows kept MKL. A
decode pass reads every layer's weights once, from memory, and there oneDNN was faster for those
layers too (docs/performance.md, "The hidden-layer rule in whole passes"). This times whole decode
passes of 1 to 8 rows (as shared drafting runs them, each row on its own request's 90-token cache)
and one 16-token pass (a short scoring pass) per member of the tiny preset, the two rules
alternating in one process. With ``--answers N`` it also times whole answers (64 new tokens) under
each rule, alternating: the first two of batched_rounds.py's prompts one after another, and its first
eight prompts at once (shared rounds), and compares the texts. A figure script, not a timed test;
ratios within one run only.

    python benchmarks/onednn_hidden_rule.py --repeats 9 --answers 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from specfuse_core import SpecFuse
from specfuse_core.kv_cache import crop_to, new_cache
from specfuse_core.local import onednn_linear
from specfuse_core.local.rows import decode_rows

CURRENT_RULE = onednn_linear.OneDnnHiddenLinear._worth_it


def previous_rule(self: onednn_linear.OneDnnHiddenLinear, rows: int) -> bool:
    """The sixteenth session's rule: also at least 4 million multiply-adds per product, and a layer
    of under 0.5 million weights only from 32 rows."""
    weights = self.in_features * self.out_features
    return (
        rows <= 512 and self.out_features >= onednn_linear.MIN_HIDDEN_OUTPUTS
        and rows * weights >= 4_000_000 and (weights >= 500_000 or rows >= 32)
    )


RULES = {"previous": previous_rule, "current": CURRENT_RULE}
CONTEXT = 90


def _use(rule: str) -> None:
    onednn_linear.OneDnnHiddenLinear._worth_it = RULES[rule]


def answers(ensemble: SpecFuse, repeats: int, tokens: int = 64) -> dict[str, object]:
    """Seconds for two lone answers and for eight concurrent ones under each rule, alternating."""
    from batched_ratio import alone, together
    from batched_rounds import prompts

    runs = {"2 alone": (alone, prompts(2)), "8 at once": (together, prompts(8))}
    seconds: dict[tuple[str, str], list[float]] = {(kind, rule): [] for kind in runs for rule in RULES}
    texts: dict[tuple[str, str], list[str]] = {}
    for rule in RULES:  # warm-up
        _use(rule)
        ensemble.generate("Warm up.", max_new_tokens=8)
    for _ in range(repeats):
        for rule in RULES:
            _use(rule)
            for kind, (run, texts_in) in runs.items():
                _, wall, texts[kind, rule] = run(ensemble, texts_in, tokens)
                seconds[kind, rule].append(wall)
    _use("current")
    result: dict[str, object] = {}
    for kind in runs:
        previous, current = (statistics.median(seconds[kind, rule]) for rule in RULES)
        result[kind] = {"previous_s": [round(x, 2) for x in seconds[kind, "previous"]], "current_s": [round(x, 2) for x in seconds[kind, "current"]],
                        "median_ratio": round(current / previous, 3), "texts_identical": texts[kind, "previous"] == texts[kind, "current"]}
    return result


def member_ms(member, repeats: int, row_counts: list[int]) -> dict[str, dict[str, float]]:
    """Median milliseconds of each pass under each rule, the rules alternating within every repeat."""
    caches = []
    for i in range(max(row_counts)):
        cache = new_cache()
        with torch.inference_mode():
            member.model(input_ids=torch.tensor([list(range(100 + i, 100 + i + CONTEXT))], device=member.device),
                         use_cache=True, **{member._cache_kwarg: cache})
        caches.append(cache)
    block = torch.tensor([list(range(300, 316))], device=member.device)
    kinds = [f"{n} rows" for n in row_counts] + ["16-token pass"]

    def run(kind: str) -> None:
        if kind == "16-token pass":
            with torch.inference_mode():
                member.model(input_ids=block, use_cache=True, **{member._cache_kwarg: caches[0]})
            crop_to(caches[0], CONTEXT)
            return
        n = int(kind.split()[0])
        decode_rows(member.model, member._cache_kwarg, caches[:n], [5] * n, [CONTEXT] * n, None)
        for cache in caches[:n]:
            crop_to(cache, CONTEXT)

    times: dict[tuple[str, str], list[float]] = {(kind, rule): [] for kind in kinds for rule in RULES}
    for repeat in range(repeats + 1):  # the first repeat warms both rules up and is dropped
        for kind in kinds:
            for rule in RULES:
                _use(rule)
                start = time.perf_counter()
                run(kind)
                if repeat:
                    times[kind, rule].append(time.perf_counter() - start)
    _use("current")
    return {kind: {rule: round(statistics.median(times[kind, rule]) * 1000, 1) for rule in RULES} for kind in kinds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8])
    parser.add_argument("--answers", type=int, default=0, help="also time whole answers, this many repeats per rule")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    ensemble = SpecFuse.from_preset("tiny")
    figures = {}
    for member in ensemble.members:
        figures[member.name] = member_ms(member, args.repeats, args.rows)
        for kind, by_rule in figures[member.name].items():
            ratio = by_rule["current"] / by_rule["previous"]
            print(f"{member.name:20s} {kind:14s} previous {by_rule['previous']:6.1f} ms  current {by_rule['current']:6.1f} ms  ({ratio:.2f}x)")
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": args.repeats, "ms": figures}
    if args.answers:
        result["answers"] = answers(ensemble, args.answers)
        for kind, figure in result["answers"].items():
            print(f"{kind}: previous {figure['previous_s']} s, current {figure['current_s']} s, "
                  f"median {figure['median_ratio']:.2f}x, same texts: {figure['texts_identical']}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
