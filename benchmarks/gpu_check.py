"""CUDA paths and GPU figures, with random-weight members of real sizes (only tokenizers and configs travel).

Checks (each recorded as pass/fail with its numbers, the run goes on after a failure):
- packed, cached verification on the GPU equals naive full-forward scoring (fp32; bf16 reported);
- the KV splice on accept equals a fresh prefill on the GPU;
- a three-member ensemble (three tokenizers, three architectures) generates on cuda in bf16 and fp16,
  deterministically, with no U+FFFD in its text;
- mixed devices: one member on the CPU, two on the GPU, in one ensemble.
Figures: the overhead ratio (ensemble time per output token / sum of the members' own cached greedy
decode time per token, both measured here, side by side) for the tiny preset's sizes and for 7B-class
members, and round time against context length.

Usage: python benchmarks/gpu_check.py --models DIR [--device cuda:0] [--out FILE] [--quick]
DIR holds smol/, qwen/, gemma/: each a config.json plus tokenizer files of the tiny preset's members.
--quick shrinks every model to 2 layers (a CPU smoke run of this script).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, Gemma3TextConfig, LlamaConfig, Qwen2Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from specfuse_core import EnsembleConfig, Member, PlainPromptFormat, SpecFuse  # noqa: E402
from specfuse_core.member import Candidate  # noqa: E402
from specfuse_core.backend import Sampling  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a detailed essay about the history of the bicycle and how it changed cities."}]
CONVERSATION = [{"role": "user", "content": "Tell me about the sea, briefly, in two lines."}]
RESPONSE = "The sea is wide and deep,\nit"
CANDIDATES = [Candidate(" keeps its secrets", False), Candidate("\n\nWaves", False), Candidate("s", False),
              Candidate(" 海は広い 🌊", False), Candidate(" sleeps.", True), Candidate("", True)]
FILLER = "The committee reviewed the quarterly report on river water quality and its seasonal trends. "

# 7B-class shapes (public configs of Qwen2.5-7B, Llama-3.1-8B, Gemma-3-4B's text tower), random weights.
LARGE_SHAPES = {
    "qwen": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                 num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    "smol": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=8, tie_word_embeddings=False),
    "gemma": dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
                  num_key_value_heads=4, head_dim=256, sliding_window=1024, vocab_size=262208),
}

RESULTS: dict[str, Any] = {"checks": {}, "figures": {}}
CONTEXT_LENGTHS = [512, 2048, 7168]  # the Llama-shaped member keeps SmolLM2's 8192-token window


def record(kind: str, name: str, fn: Callable[[], dict[str, Any]]) -> None:
    start = time.perf_counter()
    try:
        entry = fn()
    except Exception as error:  # noqa: BLE001 - a check that raises is a failed check, the run goes on
        entry = {"passed": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-2000:]}
    entry["seconds"] = round(time.perf_counter() - start, 2)
    RESULTS[kind][name] = entry
    shown = {k: v for k, v in entry.items() if k != "traceback"}
    print(f"[{kind}] {name}: {json.dumps(shown)}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(folder: Path, dtype: torch.dtype, device: str, quick: bool, large: bool, seed: int) -> Any:
    config = AutoConfig.from_pretrained(folder)
    if large:
        shape = dict(LARGE_SHAPES[folder.name])
        if "layer_types" in config.to_dict() and config.layer_types is not None:
            pattern = [("full_attention" if (i + 1) % 6 == 0 else "sliding_attention") for i in range(shape["num_hidden_layers"])]
            shape["layer_types"] = pattern if folder.name == "gemma" else ["full_attention"] * shape["num_hidden_layers"]
        for key, value in shape.items():
            setattr(config, key, value)
    if quick:
        config.num_hidden_layers = 2
        if getattr(config, "layer_types", None) is not None:
            config.layer_types = config.layer_types[:1] + ["full_attention"]
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(copy.deepcopy(config), dtype=dtype)
    return model.eval()


def build_members(models: Path, dtype: torch.dtype, devices: dict[str, str], quick: bool, large: bool = False) -> list[Member]:
    members = []
    for seed, name in enumerate(("smol", "gemma", "qwen")):
        folder = models / name
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = build_model(folder, dtype, devices[name], quick, large, seed)
        plain = PlainPromptFormat() if name == "gemma" else None  # Gemma-3-270M is a base model
        members.append(Member(model, tokenizer, name=name, plain_prompt=plain))
    return members


def naive_scores(member: Member, prompt_ids: list[int], response: str, candidates: list[Candidate]) -> list[float]:
    base = member.encode(response)
    out = []
    for cand in candidates:
        ending = (member.end_of_turn_text or "") if cand.finished else ""
        full = member.encode(response + cand.text + ending)
        shared = 0
        while shared < min(len(base), len(full)) and base[shared] == full[shared]:
            shared += 1
        scored = full[shared:]
        if cand.finished and member.end_of_turn_id is not None:
            scored = scored + [member.end_of_turn_id]
        sequence = prompt_ids + full[:shared] + scored
        with torch.inference_mode():
            logits = member.model(torch.tensor([sequence], device=member.device)).logits[0].float()
        logprobs = torch.log_softmax(logits, -1)
        start = len(prompt_ids) + shared
        out.append(float(torch.stack([logprobs[start + j - 1, tok] for j, tok in enumerate(scored)]).mean()))
    return out


def check_packed_scoring(members: list[Member], tolerance: float) -> dict[str, Any]:
    diffs = {}
    for member in members:
        session = member.start(CONVERSATION, Sampling())
        session.draft(RESPONSE, 5)
        packed = session.score(RESPONSE, CANDIDATES)
        naive = naive_scores(member, session.prompt_ids, RESPONSE, CANDIDATES)
        diffs[member.name] = max(abs(a - b) for a, b in zip(packed, naive))
    return {"passed": all(d <= tolerance for d in diffs.values()), "max_abs_diff": diffs, "tolerance": tolerance}


def check_splice(members: list[Member], tolerance: float) -> dict[str, Any]:
    diffs = {}
    for member in members:
        session = member.start(CONVERSATION, Sampling())
        session.score(RESPONSE, CANDIDATES)
        new_response = RESPONSE + CANDIDATES[3].text
        session.accept(new_response, 3, own_draft=False)
        context = session._context(new_response)
        logits = session._sync(context)
        with torch.inference_mode():
            fresh = member.model(torch.tensor([context], device=member.device)).logits[0, -1]
        diffs[member.name] = float((logits.float() - fresh.float()).abs().max())
    return {"passed": all(d <= tolerance for d in diffs.values()), "max_abs_diff": diffs, "tolerance": tolerance}


def check_generate(members: list[Member], tokens: int) -> dict[str, Any]:
    ensemble = SpecFuse(members)
    first = ensemble.generate(PROMPT, max_new_tokens=tokens)
    second = ensemble.generate(PROMPT, max_new_tokens=tokens)
    devices = sorted({str(m.device) for m in members})
    return {
        "passed": first.text == second.text and "\ufffd" not in first.text and first.usage.completion_tokens > 0,
        "deterministic": first.text == second.text, "replacement_chars": first.text.count("\ufffd"),
        "completion_tokens": first.usage.completion_tokens, "rounds": len(first.trace.rounds),
        "finish_reason": first.finish_reason, "wins": dict(first.trace.wins) if hasattr(first.trace, "wins") else None,
        "devices": devices, "text_head": first.text[:80],
    }


def standalone_seconds_per_token(member: Member, tokens: int) -> float:
    prompt = torch.tensor([member.prompt_ids(PROMPT)], device=member.device)
    with torch.inference_mode():
        member.model.generate(prompt, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        sync(member.device)
        start = time.perf_counter()
        out = member.model.generate(prompt, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        sync(member.device)
        elapsed = time.perf_counter() - start
    return elapsed / (out.shape[1] - prompt.shape[1])


def overhead_figure(members: list[Member], tokens: int) -> dict[str, Any]:
    ensemble = SpecFuse(members)
    per_token = {m.name: standalone_seconds_per_token(m, tokens) for m in members}
    ensemble.generate(PROMPT, max_new_tokens=16)  # warm-up
    start = time.perf_counter()
    result = ensemble.generate(PROMPT, max_new_tokens=tokens, max_rounds=10_000)
    wall = time.perf_counter() - start
    out = result.usage.completion_tokens
    rounds = len(result.trace.rounds)
    return {
        "member_ms_per_token": {k: round(v * 1000, 2) for k, v in per_token.items()},
        "ensemble_ms_per_token": round(wall / out * 1000, 2), "completion_tokens": out, "rounds": rounds,
        "ms_per_round": round(wall / rounds * 1000, 1),
        "overhead_ratio": round(wall / out / sum(per_token.values()), 2),
    }


def context_figure(members: list[Member], lengths: list[int]) -> dict[str, Any]:
    ensemble = SpecFuse(members)
    first = members[0]
    seconds = {}
    for length in lengths:
        text = FILLER * (length // 12 + 2)
        ids = first.encode(text)[:length]
        prompt = [{"role": "user", "content": first.decode(ids) + "\nSummarise the text above."}]
        stream = ensemble.stream(prompt, max_new_tokens=200, max_rounds=4)
        next(stream)  # round 1 carries the prompt prefill
        start = time.perf_counter()
        timed = 0
        for _ in range(2):
            if next(stream, None) is None:
                break
            timed += 1
        seconds[length] = round((time.perf_counter() - start) / max(timed, 1) * 1000, 1)
        stream.close()
    base = seconds[lengths[0]]
    return {"ms_per_round": seconds, "ratio_longest_to_shortest": round(seconds[lengths[-1]] / base, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--only-context", action="store_true", help="only the 7B-class round-vs-context figure")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    env = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
           "command": "python " + " ".join(sys.argv)}
    RESULTS["environment"] = env
    print(json.dumps(env), flush=True)
    on_gpu = {name: args.device for name in ("smol", "gemma", "qwen")}

    if args.only_context:
        large = build_members(args.models, torch.bfloat16, on_gpu, args.quick, large=True)
        record("figures", "round_vs_context_7b_class_bf16", lambda: context_figure(large, CONTEXT_LENGTHS))
        if args.out:
            args.out.write_text(json.dumps(RESULTS, indent=2) + "\n")
        return
    fp32 = build_members(args.models, torch.float32, on_gpu, args.quick)
    record("checks", "packed_scoring_fp32", lambda: check_packed_scoring(fp32, 2e-3))
    record("checks", "accept_splice_fp32", lambda: check_splice(fp32, 2e-3))
    del fp32
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        members = build_members(args.models, dtype, on_gpu, args.quick)
        record("checks", f"packed_scoring_{name}", lambda: {**check_packed_scoring(members, 0.25), "note": "low precision: reported, loose bound"})
        record("checks", f"generate_{name}", lambda: check_generate(members, 48))
        if name == "bf16":
            record("figures", "overhead_tiny_sizes_bf16", lambda: overhead_figure(members, 64 if args.quick else 128))
        del members
        torch.cuda.empty_cache() if device.type == "cuda" else None
    mixed = build_members(args.models, torch.float32, {"smol": "cpu", "gemma": args.device, "qwen": args.device}, args.quick)
    record("checks", "generate_mixed_cpu_and_gpu", lambda: check_generate(mixed, 32))
    del mixed
    if not args.skip_large:
        large = build_members(args.models, torch.bfloat16, on_gpu, args.quick, large=True)
        RESULTS["large_parameters_billions"] = {m.name: round(sum(p.numel() for p in m.model.parameters()) / 1e9, 2) for m in large}
        record("checks", "generate_7b_class_bf16", lambda: check_generate(large, 32))
        record("figures", "overhead_7b_class_bf16", lambda: overhead_figure(large, 32 if args.quick else 96))
        record("figures", "round_vs_context_7b_class_bf16", lambda: context_figure(large, CONTEXT_LENGTHS))
        del large
    failed = [name for name, entry in RESULTS["checks"].items() if not entry.get("passed")]
    RESULTS["failed_checks"] = failed
    if args.out:
        args.out.write_text(json.dumps(RESULTS, indent=2) + "\n")
    print("FAILED: " + ", ".join(failed) if failed else "all checks passed", flush=True)


if __name__ == "__main__":
    main()
