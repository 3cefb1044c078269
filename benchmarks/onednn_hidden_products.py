"""oneDNN's float32 product against PyTorch's default (MKL) on the tiny preset's hidden-layer shapes.

Why: the sixteenth session chose the rule of ``OneDnnHiddenLinear`` (specfuse_core/local/onednn_linear.py)
from these per-shape medians: not for narrow layers (key/value projections), not above 512 rows, and
then also not for small products. Each product here repeats on one layer whose weights stay in the
processor's cache; in whole passes oneDNN also won on the small products, so the eighteenth session
dropped that part (benchmarks/onednn_hidden_rule.py). Random weights and inputs; a figure script, not
a timed test; ratios within one run only.

    python benchmarks/onednn_hidden_products.py [--rows 1 2 4 8 48 128 256 512] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

# (inputs, outputs) of the preset's projections: Qwen2.5-0.5B, SmolLM2-135M, Gemma-3-270M
SHAPES = {
    "qwen q/o 896x896": (896, 896), "qwen k/v 896->128": (896, 128), "qwen up/gate 896->4864": (896, 4864),
    "qwen down 4864->896": (4864, 896), "smollm2 q/o 576x576": (576, 576), "smollm2 up/gate 576->1536": (576, 1536),
    "smollm2 down 1536->576": (1536, 576), "gemma up/gate 640->2048": (640, 2048), "gemma down 2048->640": (2048, 640),
}


def median_ms(run: Callable[[], torch.Tensor], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 48, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}; ms own -> oneDNN (ratio)")
    with torch.inference_mode():
        for name, (inputs, outputs) in SHAPES.items():
            weight = torch.randn(outputs, inputs)
            cells = []
            for rows in args.rows:
                hidden = torch.randn(rows, inputs)
                own = median_ms(lambda: F.linear(hidden, weight), args.repeats)
                onednn = median_ms(lambda: torch._C._nn.mkldnn_linear(hidden.to_mkldnn(), weight, None).to_dense(), args.repeats)
                cells.append(f"{rows}: {own:.3f}->{onednn:.3f} ({onednn / own:.2f}x)")
            print(f"{name}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
