"""Flat rounds: mean round time over output tokens 900-1000 / mean over tokens 50-150 of one long
answer (target <= 1.3: no re-prefill, so a round costs about the same at any length).

Usage: python benchmarks/flat_rounds.py [--tokens 1000]
"""

from __future__ import annotations

import argparse
import time

from specfuse_core import EnsembleConfig, SpecFuse

PROMPT = [{"role": "user", "content": "Write a very long, detailed story about a lighthouse keeper and the storms of one winter."}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=1000)
    args = parser.parse_args()
    ensemble = SpecFuse.from_preset("tiny", config=EnsembleConfig(max_new_tokens=args.tokens, max_rounds=10_000))
    counter = ensemble.members[0]
    stream = ensemble.stream(PROMPT)
    rounds = []  # (tokens so far, seconds, verified)
    while True:
        start = time.perf_counter()
        event = next(stream, None)
        if event is None:
            break
        seconds = time.perf_counter() - start
        verified = bool(stream.request.trace.rounds[-1].verifiers)
        rounds.append((len(counter.encode(stream.request.response)), seconds, verified))
    lo, hi = args.tokens * 0.05, args.tokens * 0.15
    early = [s for n, s, v in rounds if lo <= n <= hi and v]
    late = [s for n, s, v in rounds if n >= args.tokens * 0.9 and v]
    result = stream.result()
    print(f"{result.usage.completion_tokens} tokens in {len(rounds)} rounds ({result.finish_reason})")
    if early and late:
        print(f"scored rounds: early {sum(early) / len(early):.2f} s (n={len(early)}), late {sum(late) / len(late):.2f} s (n={len(late)})")
        print(f"flat_rounds_ratio={(sum(late) / len(late)) / (sum(early) / len(early)):.2f}")
    else:
        print("answer too short for the late window; no ratio")


if __name__ == "__main__":
    main()
