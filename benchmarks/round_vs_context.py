"""Round time as the context grows: one full round (every member drafts segment_tokens and verifies
every candidate) at a context of L tokens. Rounds must stay flat (no re-prefill of the prefix); the
authors' reference code measured on this CPU with the same three models: 6.1 s (L=64), 10.4 s (256),
19.0 s (512), 33.0 s (1024), 76.6 s (2048).

Usage: python benchmarks/round_vs_context.py [--lengths 64 256 512 1024 2048]
"""

from __future__ import annotations

import argparse
import time

from specfuse_core import EnsembleConfig, SpecFuse

AUTHORS_SECONDS = {64: 6.1, 256: 10.4, 512: 19.0, 1024: 33.0, 2048: 76.6}
FILLER = "The committee reviewed the quarterly report on river water quality and its seasonal trends. "


def prompt_of(ensemble: SpecFuse, length: int) -> list[dict]:
    first = ensemble.members[0]
    text = ""
    while len(first.encode(text)) < length:
        text += FILLER
    ids = first.encode(text)[:length]
    return [{"role": "user", "content": first.decode(ids) + "\nSummarise the text above."}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 512, 1024, 2048])
    args = parser.parse_args()
    ensemble = SpecFuse.from_preset("tiny", config=EnsembleConfig(max_new_tokens=200, max_rounds=3))
    base = None
    for length in args.lengths:
        stream = ensemble.stream(prompt_of(ensemble, length))
        next(stream)  # round 1 includes the one-time prompt prefill
        start = time.perf_counter()
        event = next(stream, None)
        seconds = time.perf_counter() - start
        stream.close()
        scored = bool(stream.result().trace.rounds[-1].verifiers) if event else False
        base = base or seconds
        authors = AUTHORS_SECONDS.get(length)
        speedup = f", authors' code {authors:.1f} s -> {authors / seconds:.1f}x faster" if authors else ""
        print(f"L={length}: round {seconds:.2f} s (verified={scored}), {seconds / base:.2f}x the first length{speedup}", flush=True)


if __name__ == "__main__":
    main()
