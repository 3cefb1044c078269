"""Batched rounds: aggregate tokens/s of N concurrent greedy requests vs one request alone, per-request
latency, and a byte-for-byte check against sequential outputs. A figure script, not a timed test.

    python benchmarks/batched_rounds.py                      # tiny preset, CPU, N = 1 2 4 8
    python benchmarks/batched_rounds.py --concurrency 1 2 4 8 16 --max-new-tokens 48
    python benchmarks/batched_rounds.py --no-pooled-scoring                  # share drafting passes only
    python benchmarks/batched_rounds.py --no-pooled-drafting                 # pool scoring, not the drafts inside rounds
    python benchmarks/batched_rounds.py --no-onednn-output-layer             # the members' own output layers
    python benchmarks/batched_rounds.py --random-members DIR --device cuda:0 --decode-block 64 --concurrency 1 8 32 64

``--random-members DIR``: DIR holds smol/, gemma/, qwen/, each a config.json plus tokenizer files
(as for benchmarks/gpu_check.py); the members get random weights of those sizes (``--layers`` cuts depth).
Every request of a run has its own prompt; "alone" runs the same prompts one after another on the same
ensemble, so both sides pay the same prefill and the same text. Run one timing benchmark at a time.
All prompts run alone before the concurrent batches, so the machine's drift can land on one side:
for the ratio at one concurrency, benchmarks/batched_ratio.py interleaves the two.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import threading
import time
from pathlib import Path

import torch

from specfuse_core import EnsembleConfig, Member, PlainPromptFormat, SpecFuse

TOPICS = ["tides", "bread", "volcanoes", "chess", "bees", "glaciers", "trains", "paper", "owls", "copper",
          "rain", "maps", "salt", "kites", "moss", "clocks", "bridges", "ink", "comets", "wool"]


def prompts(n: int) -> list[str]:
    return [f"Explain in two sentences how {TOPICS[i % len(TOPICS)]} work." for i in range(n)]


def random_members(folder: Path, device: str, dtype: torch.dtype, layers: int | None, block: int) -> list[Member]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    members = []
    for seed, name in enumerate(("smol", "gemma", "qwen")):
        config = AutoConfig.from_pretrained(folder / name)
        if layers:
            config.num_hidden_layers = layers
            if getattr(config, "layer_types", None) is not None:
                config.layer_types = config.layer_types[:layers]
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(copy.deepcopy(config), dtype=dtype)
        plain = PlainPromptFormat() if name == "gemma" else None
        members.append(Member(model.eval(), AutoTokenizer.from_pretrained(folder / name), name=name, plain_prompt=plain, decode_block=block))
    return members


def timed_stream(ensemble: SpecFuse, prompt: str, tokens: int, out: dict, start: float) -> None:
    """One request; records when each segment landed (seconds after ``start``)."""
    stamps = []
    stream = ensemble.stream(prompt, max_new_tokens=tokens)
    for _ in stream:
        stamps.append(time.perf_counter() - start)
    result = stream.result()
    out.update(text=result.text, tokens=result.usage.completion_tokens, stamps=stamps,
               shared=sum(u.shared_forward_calls for u in result.usage.members.values()),
               draft_s=sum(r.draft_seconds for r in result.trace.rounds),
               verify_s=sum(r.verify_seconds for r in result.trace.rounds), rounds=len(result.trace.rounds))


def time_split(runs: list[dict], before: dict, after: dict, wall: float) -> dict:
    """Where the wall time of a phase went: shared drafting before the rounds, and inside the rounds
    their (unshared) drafting, their scoring, and the rest (accepting, judging, bookkeeping). With
    pooled scoring the rounds wait for each other, so their own timings overlap: then the split is
    the pooled scoring passes and everything else the rounds did."""
    delta = {k: after[k] - before[k] for k in ("prepare_seconds", "step_seconds", "pooled_scoring_seconds", "pooled_drafting_seconds")}
    split = {"rounds": sum(r["rounds"] for r in runs), "shared_drafting_s": round(delta["prepare_seconds"], 2)}
    if delta["pooled_scoring_seconds"] > 0:
        pooled = delta["pooled_scoring_seconds"] + delta["pooled_drafting_seconds"]
        split.update(pooled_scoring_s=round(delta["pooled_scoring_seconds"], 2), pooled_drafting_s=round(delta["pooled_drafting_seconds"], 2),
                     rest_of_rounds_s=round(delta["step_seconds"] - pooled, 2))
    else:
        draft, verify = sum(r["draft_s"] for r in runs), sum(r["verify_s"] for r in runs)
        split.update(round_drafting_s=round(draft, 2), scoring_s=round(verify, 2),
                     rest_of_rounds_s=round(delta["step_seconds"] - draft - verify, 2))
    split["outside_rounds_s"] = round(wall - delta["prepare_seconds"] - delta["step_seconds"], 2)
    return split


def latency(run: dict, start: float) -> tuple[float, float]:
    stamps = run["stamps"]
    first = stamps[0] - start
    per = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else float("nan")
    return first, per


def mean_or_none(values: list[float]) -> float | None:
    """Mean of the defined values (a one-segment request has no time per later segment)."""
    defined = [v for v in values if v == v]
    return round(statistics.mean(defined), 3) if defined else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--random-members", type=Path, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--decode-block", type=int, default=None, help="rows per drafting pass (default: as many as drafts; an int pads for batch-invariant bits)")
    parser.add_argument("--alone-requests", type=int, default=None,
                        help="run only the first K prompts alone (default: all); outputs are compared where a lone one exists")
    parser.add_argument("--no-pooled-scoring", action="store_true", help="share drafting passes only (EnsembleConfig.pooled_scoring=False)")
    parser.add_argument("--no-pooled-drafting", action="store_true", help="pool scoring but not the drafts inside rounds (EnsembleConfig.pooled_drafting=False)")
    parser.add_argument("--no-onednn-output-layer", action="store_true", help="members' own output layers (Member(onednn_output_layer=False))")
    parser.add_argument("--no-onednn-hidden-layers", action="store_true", help="members' own hidden layers (Member(onednn_hidden_layers=False))")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    dtype = getattr(torch, args.dtype)
    top = max(args.concurrency)
    config = EnsembleConfig(max_batch_requests=max(top, 1), pooled_scoring=not args.no_pooled_scoring, pooled_drafting=not args.no_pooled_drafting)
    if args.random_members:
        ensemble = SpecFuse(random_members(args.random_members, args.device, dtype, args.layers, args.decode_block), config)
    else:
        ensemble = SpecFuse.from_preset("tiny", config=config, device=args.device, dtype=dtype, decode_block=args.decode_block,
                                        onednn_output_layer=not args.no_onednn_output_layer, onednn_hidden_layers=not args.no_onednn_hidden_layers)
    texts = prompts(top)
    ensemble.generate("Warm up.", max_new_tokens=8)
    alone_count = min(args.alone_requests or top, top)

    alone = []  # each prompt alone, one after another
    counters = dict(ensemble.batching)
    began = time.perf_counter()
    for prompt in texts[:alone_count]:
        run: dict = {}
        start = time.perf_counter()
        timed_stream(ensemble, prompt, args.max_new_tokens, run, start)
        run["start"], run["wall"] = start, time.perf_counter() - start
        alone.append(run)
        print(f"alone {len(alone)}/{alone_count}: {run['tokens']} tokens", flush=True)
    alone_s = time.perf_counter() - began
    alone_split = time_split(alone, counters, ensemble.batching, alone_s)
    alone_rate = sum(r["tokens"] for r in alone) / alone_s

    rows = []
    for n in args.concurrency:
        runs = [dict() for _ in range(n)]
        counters = dict(ensemble.batching)
        start = time.perf_counter()
        threads = [threading.Thread(target=timed_stream, args=(ensemble, texts[i], args.max_new_tokens, runs[i], start)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        tokens = sum(r["tokens"] for r in runs)
        lat = [latency(r, 0.0) for r in runs]
        rows.append({
            "concurrent": n,
            "tokens": tokens,
            "wall_s": round(wall, 2),
            "tokens_per_s": round(tokens / wall, 2),
            "vs_alone": round(tokens / wall / alone_rate, 2),
            # against the N=1 row measured just before (same machine load; pass 1 first in --concurrency)
            "vs_one": round(tokens / wall / rows[0]["tokens_per_s"], 2) if rows else 1.0,
            "first_segment_s": round(statistics.mean(f for f, _ in lat), 2),
            "per_segment_s": mean_or_none([p for _, p in lat]),
            "shared_passes": sum(r["shared"] for r in runs),
            "shared_scoring_passes": ensemble.batching["shared_scoring_passes"] - counters["shared_scoring_passes"],
            "identical_to_alone": all(r["text"] == a["text"] for r, a in zip(runs, alone)),
            "compared_with_alone": min(n, len(alone)),
            "time_split": time_split(runs, counters, ensemble.batching, wall),
        })
        print(json.dumps(rows[-1]), flush=True)
    alone_lat = [latency(r, 0.0) for r in alone]  # stamps are already relative to each request's start
    report = {
        "device": args.device, "device_name": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "dtype": args.dtype, "layers": args.layers, "members": [m.name for m in ensemble.members], "max_new_tokens": args.max_new_tokens,
        "decode_block": args.decode_block, "pooled_scoring": not args.no_pooled_scoring, "pooled_drafting": not args.no_pooled_drafting,
        "onednn_output_layer": not args.no_onednn_output_layer, "onednn_hidden_layers": not args.no_onednn_hidden_layers, "torch_threads": torch.get_num_threads(),
        "alone": {"requests": alone_count, "tokens_per_s": round(alone_rate, 2),
                  "first_segment_s": round(statistics.mean(f for f, _ in alone_lat), 2),
                  "per_segment_s": mean_or_none([p for _, p in alone_lat]),
                  # the prompt the N=1 row runs, alone: the like-for-like figure for that row
                  "first_prompt_tokens_per_s": round(alone[0]["tokens"] / alone[0]["wall"], 2),
                  "time_split": alone_split},
        "concurrent": rows,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
