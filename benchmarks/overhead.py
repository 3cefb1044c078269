"""Overhead ratio and round efficiency of the ensemble, measured side by side in one run.

overhead_ratio   = ensemble wall time per output token
                   / sum over members of their standalone cached greedy decode time per token
round_efficiency = measured round time / sum over members of (decoding segment_tokens tokens with a
                   cache + one cached forward over all candidates' tokens), timed in the same run

The ensemble runs without the preset's calibration (no gating, every member drafts and verifies every
round), as when these figures were first recorded; ``--calibrated`` runs the preset as shipped.

Usage: python benchmarks/overhead.py [--tokens 256] [--segment 10] [--calibrated]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.kv_cache import new_cache

PROMPT = [{"role": "user", "content": "Write a detailed essay about the history of the bicycle, its inventors and how it changed cities."}]


def standalone_seconds_per_token(member, tokens: int) -> float:
    """Plain cached greedy decoding with transformers' generate (the member's own speed)."""
    prompt = torch.tensor([member.prompt_ids(PROMPT)])
    with torch.inference_mode():
        member.model.generate(prompt, max_new_tokens=4, min_new_tokens=4, do_sample=False)  # warm-up
        start = time.perf_counter()
        out = member.model.generate(prompt, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        elapsed = time.perf_counter() - start
    return elapsed / (out.shape[1] - prompt.shape[1])


def ideal_round_seconds(member, context_ids: list[int], segment: int, candidate_tokens: int) -> float:
    """segment cached decode steps + one cached forward over candidate_tokens tokens, raw model calls."""
    cache = new_cache()
    model = member.model
    with torch.inference_mode():
        model(torch.tensor([context_ids[:-1]]), cache=cache, use_cache=True, logits_to_keep=1)
        start = time.perf_counter()
        token = torch.tensor([[context_ids[-1]]])
        for _ in range(segment):
            logits = model(token, cache=cache, use_cache=True, logits_to_keep=1).logits
            token = logits[:, -1].argmax(-1, keepdim=True)
        cache.crop(-(segment - 1))
        model(torch.randint(0, 1000, (1, candidate_tokens)), cache=cache, use_cache=True, logits_to_keep=candidate_tokens)
        return time.perf_counter() - start


def run_ensemble(ensemble: SpecFuse, tokens: int, **overrides):
    stream = ensemble.stream(PROMPT, max_new_tokens=tokens, **overrides)
    step_times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        event = next(stream, None)
        if event is None:
            break
        step_times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return stream.result(), wall, step_times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--segment", type=int, default=10)
    parser.add_argument("--calibrated", action="store_true", help="with the preset's shipped calibration (gating, router)")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = EnsembleConfig(segment_tokens=args.segment, max_rounds=10_000)
    if args.calibrated:
        ensemble = SpecFuse.from_preset("tiny", config=config)
    else:
        ensemble = SpecFuse.from_preset("tiny", config=config, calibration=None)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads={torch.get_num_threads()}")

    per_token = {m.name: standalone_seconds_per_token(m, args.tokens) for m in ensemble.members}
    for name, seconds in per_token.items():
        print(f"standalone {name}: {seconds * 1000:.1f} ms/token")
    budget = sum(per_token.values())

    result, wall, steps = run_ensemble(ensemble, args.tokens)
    out_tokens = result.usage.completion_tokens
    ratio = wall / out_tokens / budget
    print(f"ensemble: {out_tokens} tokens, {len(steps)} rounds, {wall:.1f} s, {wall / out_tokens * 1000:.1f} ms/token")

    exit_result, exit_wall, _ = run_ensemble(ensemble, args.tokens, model_exit=True)
    exit_ratio = exit_wall / exit_result.usage.completion_tokens / budget
    calls = result.usage.forward_calls / len(result.trace.rounds)
    exit_calls = exit_result.usage.forward_calls / len(exit_result.trace.rounds)
    print(f"with model exit: exited={exit_result.trace.exited}, forward calls/round {exit_calls:.1f} vs {calls:.1f} "
          f"({(1 - exit_calls / calls) * 100:.0f}% fewer)")
    print(f"overhead_ratio_model_exit={exit_ratio:.2f}")

    # Round efficiency over the scored rounds (the prefill-bearing first round excluded).
    request_rounds = result.trace.rounds
    measured, ideal = [], []
    for round_trace, seconds in zip(request_rounds[1:], steps[1:]):
        if not round_trace.verifiers:
            continue
        measured.append(seconds)
    sample = [r for r in request_rounds[1:] if r.verifiers][:5]
    context_text = result.text
    for r in sample:
        prefix = context_text[: sum(len(x.candidates[x.winner].text) for x in request_rounds[: r.round - 1])]
        total = 0.0
        for member in ensemble.members:
            context = member.prompt_ids(PROMPT) + member.encode(prefix)
            candidate_tokens = sum(len(member.encode(c.text)) + (1 if c.finished else 0) for c in r.candidates)
            total += ideal_round_seconds(member, context, args.segment, candidate_tokens)
        ideal.append(total)
    if measured and ideal:
        efficiency = (sum(measured) / len(measured)) / (sum(ideal) / len(ideal))
        print(f"round: measured {sum(measured) / len(measured):.2f} s, ideal {sum(ideal) / len(ideal):.2f} s")
        print(f"round_efficiency={efficiency:.2f}")
    weights = sum(p.numel() * p.element_size() for m in ensemble.members for p in m.model.parameters())
    kv = sum(kv_bytes(m, result.usage.prompt_tokens + out_tokens + 4 * args.segment) for m in ensemble.members)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"memory: peak RSS {peak / 2**30:.2f} GiB, weights {weights / 2**30:.2f} GiB, KV at the longest context {kv / 2**20:.0f} MiB, "
          f"peak/(weights+KV)={peak / (weights + kv):.2f}")
    print(f"overhead_ratio={ratio:.2f}")


def kv_bytes(member, tokens: int) -> int:
    config = member.model.config.get_text_config()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 4 * tokens


if __name__ == "__main__":
    main()
