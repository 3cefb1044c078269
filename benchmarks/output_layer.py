"""Linear layers through oneDNN against the model's own layers, on the tiny preset, CPU.

Why: ``Member(onednn_output_layer=True)`` and ``Member(onednn_hidden_layers=True)`` (both defaults)
compute a CPU float32 member's output layer and hidden layers through oneDNN
(specfuse_core/local/onednn_linear.py). This measures what that buys, the modes alternating in one
process so that they share the machine's drift: one decode step per member (1 and 8 rows, as batched
drafting runs them) and one 48-token pass (as a scoring pass), and whole ensemble answers, whose
texts are compared. By default the output layer's own product is compared with oneDNN's, the
hidden layers as loaded (on oneDNN since the sixteenth session; the fifteenth session's figures had
them on MKL); ``--hidden`` compares the output layer alone on oneDNN with all layers on oneDNN.
A figure script, not a timed test; ratios within one run only.

    python benchmarks/output_layer.py --repeats 3 --tokens 64           # the output layer: own vs oneDNN
    python benchmarks/output_layer.py --hidden --repeats 3 --tokens 64  # the output layer alone vs all layers
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from specfuse_core import SpecFuse
from specfuse_core.kv_cache import crop_to, new_cache
from specfuse_core.local.onednn_linear import OneDnnHiddenLinear, OneDnnOutputLinear
from specfuse_core.local.rows import decode_rows

PROMPTS = [
    "Explain in two sentences how tides work.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
]


HIDDEN = False  # --hidden: the modes compared are "output layer only" (False) and "all layers" (True)


def switch(ensemble: SpecFuse, onednn: bool) -> None:
    """The compared layers through oneDNN, or back to ``torch.nn.Linear``'s own product: the output
    layers by default; with ``--hidden`` the hidden layers, the output layers staying on oneDNN."""
    for member in ensemble.members:
        output = member.model.get_output_embeddings()
        if not HIDDEN:
            output.__class__ = OneDnnOutputLinear if onednn else torch.nn.Linear
            continue
        for module in member.model.modules():
            if module is not output and type(module) in (torch.nn.Linear, OneDnnHiddenLinear):
                module.__class__ = OneDnnHiddenLinear if onednn else torch.nn.Linear


def mode_name(onednn: bool) -> str:
    if HIDDEN:
        return "all layers" if onednn else "output layer"
    return "oneDNN" if onednn else "own layer"


def step_ms(ensemble: SpecFuse, repeats: int) -> dict[str, dict[str, float]]:
    """Median milliseconds per member of one decode step (1 and 8 rows) and of one 48-token pass (as a
    scoring pass runs it) after an 80-token prompt, passes x mode, the modes alternating."""
    result = {}
    passes = {"1 row": 1, "8 rows": 8, "48-token pass": 48}
    for member in ensemble.members:
        cache = new_cache()
        with torch.inference_mode():
            member.model(input_ids=torch.tensor([list(range(100, 180))], device=member.device), use_cache=True, **{member._cache_kwarg: cache})
        block = torch.tensor([list(range(200, 248))], device=member.device)

        def run(kind: str) -> None:
            if kind == "48-token pass":
                with torch.inference_mode():
                    member.model(input_ids=block, use_cache=True, **{member._cache_kwarg: cache})
            else:
                decode_rows(member.model, member._cache_kwarg, [cache], [5], [80], passes[kind])
            crop_to(cache, 80)

        times: dict[tuple[str, bool], list[float]] = {(kind, onednn): [] for kind in passes for onednn in (False, True)}
        for _ in range(repeats + 1):  # the first round warms both modes up and is dropped
            for kind, onednn in times:
                switch(ensemble, onednn)
                start = time.perf_counter()
                run(kind)
                times[kind, onednn].append(time.perf_counter() - start)
        result[member.name] = {f"{kind}, {mode_name(onednn)}": round(statistics.median(v[1:]) * 1000, 1) for (kind, onednn), v in times.items()}
    return result


def answers(ensemble: SpecFuse, repeats: int, tokens: int) -> dict[str, object]:
    """Seconds for the prompts' answers, the two modes alternating; and whether the texts agree."""
    seconds: dict[bool, list[float]] = {False: [], True: []}
    texts: dict[bool, list[str]] = {False: [], True: []}
    for onednn in (False, True):  # warm-up
        switch(ensemble, onednn)
        ensemble.generate("Warm up.", max_new_tokens=8)
    for _ in range(repeats):
        for onednn in (False, True):
            switch(ensemble, onednn)
            start = time.perf_counter()
            texts[onednn] = [ensemble.generate(p, max_new_tokens=tokens).text for p in PROMPTS]
            seconds[onednn].append(time.perf_counter() - start)
    own, fast = statistics.median(seconds[False]), statistics.median(seconds[True])
    return {f"{mode_name(False)} s": [round(s, 2) for s in seconds[False]], f"{mode_name(True)} s": [round(s, 2) for s in seconds[True]],
            "median_ratio": round(fast / own, 3), "texts_identical": texts[False] == texts[True],
            "texts": {mode_name(False): texts[False], mode_name(True): texts[True]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step-repeats", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--hidden", action="store_true", help="compare the output layer alone on oneDNN with all layers on oneDNN")
    args = parser.parse_args()
    global HIDDEN
    HIDDEN = args.hidden
    ensemble = SpecFuse.from_preset("tiny")
    report = {"compared": f"{mode_name(False)} -> {mode_name(True)}", "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "decode_step_ms": step_ms(ensemble, args.step_repeats)}
    print(json.dumps(report["decode_step_ms"], indent=2), flush=True)
    report["answers"] = answers(ensemble, args.repeats, args.tokens)
    report["answers"]["prompts"], report["answers"]["max_new_tokens"] = len(PROMPTS), args.tokens
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
