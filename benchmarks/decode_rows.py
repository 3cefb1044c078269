"""Cost and bits of one drafting decode step by row count, on the tiny preset's members.

Why: batch-invariant mode (``decode_block=N``) pads a lone request's step to N rows; this shows what
that costs against the one-row step, and how far a row's logits move with the row count
(docs/reliability.md, docs/performance.md). A figure script, not a timed test.

    python benchmarks/decode_rows.py [--blocks 1 2 4 8] [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from specfuse_core import SpecFuse
from specfuse_core.kv_cache import crop_to, new_cache
from specfuse_core.local.rows import decode_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    ensemble = SpecFuse.from_preset("tiny")
    print(f"torch threads={torch.get_num_threads()}")
    for member in ensemble.members:
        cache = new_cache()
        prompt = torch.tensor([list(range(100, 180))], device=member.device)
        with torch.inference_mode():
            member.model(input_ids=prompt, use_cache=True, **{member._cache_kwarg: cache})
        length = prompt.shape[1]

        def step(block: int) -> torch.Tensor:
            logits = decode_rows(member.model, member._cache_kwarg, [cache], [5], [length], block)[0]
            crop_to(cache, length)
            return logits

        reference = step(args.blocks[0])
        cells = []
        for block in args.blocks:
            logits = step(block)  # warm-up, and the bits
            start = time.perf_counter()
            for _ in range(args.steps):
                step(block)
            ms = (time.perf_counter() - start) / args.steps * 1000
            cells.append(f"{block} rows {ms:.0f} ms (max |diff| vs {args.blocks[0]} rows {(logits - reference).abs().max().item():.1e})")
        print(f"{member.name}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
