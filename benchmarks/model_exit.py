"""Model-exit saving: member forward calls per round with exit off vs on, on the same prompts.

Prints per setting the calls per round, the saving, when members exited, and whether the answer
changed (quality on real data is the evaluation harness's job).

Usage: python benchmarks/model_exit.py [--tokens 128] [--temperatures 0.5 0.25] [--warmup 3]
"""

from __future__ import annotations

import argparse

from specfuse_core import EnsembleConfig, SpecFuse

PROMPTS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
    "Write a short paragraph explaining why the sky is blue.",
    "List three tips for writing clear emails.",
]


def calls_per_round(result) -> float:
    return result.usage.forward_calls / max(1, len(result.trace.rounds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 0.25])
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    ensemble = SpecFuse.from_preset("tiny", config=EnsembleConfig(max_new_tokens=args.tokens))
    baseline = [ensemble.generate(p) for p in PROMPTS]
    off_calls = sum(r.usage.forward_calls for r in baseline) / sum(len(r.trace.rounds) for r in baseline)
    print(f"exit off: {off_calls:.1f} forward calls/round")
    for temperature in args.temperatures:
        results = [ensemble.generate(p, model_exit=True, exit_temperature=temperature, exit_warmup_rounds=args.warmup) for p in PROMPTS]
        on_calls = sum(r.usage.forward_calls for r in results) / sum(len(r.trace.rounds) for r in results)
        exits = [
            {name: next(r.round for r in res.trace.rounds if name in r.exited) for name in res.trace.exited} for res in results
        ]
        same = sum(a.text == b.text for a, b in zip(results, baseline))
        print(f"exit_temperature={temperature}: {on_calls:.1f} calls/round ({(1 - on_calls / off_calls) * 100:.0f}% fewer), "
              f"exit rounds {exits}, {same}/{len(PROMPTS)} answers unchanged")
        print(f"model_exit_saving_T{temperature}={1 - on_calls / off_calls:.2f}")


if __name__ == "__main__":
    main()
