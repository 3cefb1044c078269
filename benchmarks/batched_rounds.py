"""Batched rounds: aggregate tokens/s of N concurrent greedy requests vs one request alone, per-request
latency, and a byte-for-byte check against sequential outputs. A figure script, not a timed test.

    python benchmarks/batched_rounds.py                      # tiny preset, CPU, N = 1 2 4 8
    python benchmarks/batched_rounds.py --concurrency 1 2 4 8 16 --max-new-tokens 48
    python benchmarks/batched_rounds.py --random-members DIR --device cuda:0 --decode-block 64 --concurrency 1 8 32 64

``--random-members DIR``: DIR holds smol/, gemma/, qwen/, each a config.json plus tokenizer files
(as for benchmarks/gpu_check.py); the members get random weights of those sizes (``--layers`` cuts depth).
Every request of a run has its own prompt; "alone" runs the same prompts one after another on the same
ensemble, so both sides pay the same prefill and the same text. Run one timing benchmark at a time.
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
               shared=sum(u.shared_forward_calls for u in result.usage.members.values()))


def latency(run: dict, start: float) -> tuple[float, float]:
    stamps = run["stamps"]
    first = stamps[0] - start
    per = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else float("nan")
    return first, per


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--random-members", type=Path, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--decode-block", type=int, default=None, help="rows per drafting pass (default: as many as drafts; an int pads for batch-invariant bits)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    dtype = getattr(torch, args.dtype)
    top = max(args.concurrency)
    config = EnsembleConfig(max_batch_requests=max(top, 1))
    if args.random_members:
        ensemble = SpecFuse(random_members(args.random_members, args.device, dtype, args.layers, args.decode_block), config)
    else:
        ensemble = SpecFuse.from_preset("tiny", config=config, device=args.device, dtype=dtype, decode_block=args.decode_block)
    texts = prompts(top)
    ensemble.generate("Warm up.", max_new_tokens=8)

    alone = []  # each prompt alone, one after another
    began = time.perf_counter()
    for prompt in texts:
        run: dict = {}
        start = time.perf_counter()
        timed_stream(ensemble, prompt, args.max_new_tokens, run, start)
        run["start"] = start
        alone.append(run)
        print(f"alone {len(alone)}/{top}: {run['tokens']} tokens", flush=True)
    alone_s = time.perf_counter() - began
    alone_rate = sum(r["tokens"] for r in alone) / alone_s

    rows = []
    for n in args.concurrency:
        runs = [dict() for _ in range(n)]
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
            "per_segment_s": round(statistics.mean(p for _, p in lat if p == p), 3) if any(p == p for _, p in lat) else None,
            "shared_passes": sum(r["shared"] for r in runs),
            "identical_to_alone": all(r["text"] == a["text"] for r, a in zip(runs, alone)),
        })
        print(json.dumps(rows[-1]), flush=True)
    alone_lat = [latency(r, 0.0) for r in alone]  # stamps are already relative to each request's start
    report = {
        "device": args.device, "members": [m.name for m in ensemble.members], "max_new_tokens": args.max_new_tokens,
        "decode_block": args.decode_block, "torch_threads": torch.get_num_threads(),
        "alone": {"requests": top, "tokens_per_s": round(alone_rate, 2),
                  "first_segment_s": round(statistics.mean(f for f, _ in alone_lat), 2),
                  "per_segment_s": round(statistics.mean(p for _, p in alone_lat if p == p), 3)},
        "concurrent": rows,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
