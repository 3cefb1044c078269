"""Cost and bits of one drafting decode step by row count, on the tiny preset's members.

Why: batch-invariant mode (``decode_block=N``) pads a lone request's step to N rows; this shows what
that costs against the one-row step, and how far a row's logits move with the row count
(docs/reliability.md, docs/performance.md). A figure script, not a timed test.

    python benchmarks/decode_rows.py [--blocks 1 2 4 8] [--steps 10]
    python benchmarks/decode_rows.py --dtypes float32 bfloat16 --blocks 1 8 --repeats 3

With several ``--dtypes`` the preset is loaded once per dtype and the dtypes are timed alternately,
``--repeats`` times, so that drift on a shared machine hits them alike; bits are compared within a dtype.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from specfuse_core import SpecFuse
from specfuse_core.kv_cache import crop_to, new_cache
from specfuse_core.local.rows import decode_rows


def _member_steps(member, blocks: list[int]):
    """A step function for one member: a decode pass of ``block`` rows after an 80-token prompt."""
    cache = new_cache()
    prompt = torch.tensor([list(range(100, 180))], device=member.device)
    with torch.inference_mode():
        member.model(input_ids=prompt, use_cache=True, **{member._cache_kwarg: cache})
    length = prompt.shape[1]

    def step(block: int) -> torch.Tensor:
        logits = decode_rows(member.model, member._cache_kwarg, [cache], [5], [length], block)[0]
        crop_to(cache, length)
        return logits

    reference = step(blocks[0])
    diffs = {block: (step(block) - reference).abs().max().item() for block in blocks}  # warm-up, and the bits
    return step, diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dtypes", nargs="+", default=["float32"], help="member dtypes, timed alternately")
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds over the dtypes; the median is printed")
    args = parser.parse_args()
    ensembles = {name: SpecFuse.from_preset("tiny", dtype=getattr(torch, name)) for name in args.dtypes}
    print(f"torch threads={torch.get_num_threads()}")
    for index, name in enumerate(ensembles[args.dtypes[0]].member_names):
        steps = {dtype: _member_steps(ensembles[dtype].members[index], args.blocks) for dtype in args.dtypes}
        times: dict[tuple[str, int], list[float]] = {(d, b): [] for d in args.dtypes for b in args.blocks}
        for _ in range(args.repeats):
            for dtype in args.dtypes:
                step = steps[dtype][0]
                for block in args.blocks:
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        step(block)
                    times[(dtype, block)].append((time.perf_counter() - start) / args.steps * 1000)
        for dtype in args.dtypes:
            diffs = steps[dtype][1]
            cells = [
                f"{block} rows {statistics.median(times[(dtype, block)]):.0f} ms (max |diff| vs {args.blocks[0]} rows {diffs[block]:.1e})"
                for block in args.blocks
            ]
            print(f"{name} [{dtype}]: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
