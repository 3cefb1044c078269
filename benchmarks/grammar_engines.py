"""Grammar engines for constrained drafting, measured on the tiny preset's three tokenizers (CPU).

For each engine (llguidance, xgrammar, outlines-core) and each tokenizer this prints:
  setup     one-off cost of turning the tokenizer into the engine's vocabulary structure
  compile   compiling one typical JSON schema (nested object, array, enum, optional field, numbers)
  per-token mean time to compute the allowed-token mask and advance by one token, walking a valid
            JSON document in the tokenizer's own tokens (the drafting loop's per-token work)
  rollback  whether rolling back N tokens and re-advancing lands in the same state
and, once, the cost of applying a packed mask to a logits row (the same for every engine).

An engine that is not installed is reported as such. xgrammar pulls triton (~290 MB) as a
dependency, so it was measured from a --no-deps side install:
    pip install --no-deps --target /tmp/xgr_site xgrammar apache-tvm-ffi
    PYTHONPATH=/tmp/xgr_site python benchmarks/grammar_engines.py

Usage: python benchmarks/grammar_engines.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import AutoTokenizer

from specfuse_core.presets import preset_members, resolve_preset_member

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "height_m": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["math", "poetry", "engineering"]}},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
        "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "age", "height_m", "tags", "address", "nickname"],
}
DOCUMENT = json.dumps(
    {"name": "Ada Lovelace", "age": 36, "height_m": 1.65, "tags": ["math", "poetry"],
     "address": {"city": "London", "zip": "W1"}, "nickname": None}
)


def apply_mask(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """Packed int32 bitmask -> -inf on disallowed logits (torch-native, no torch.compile)."""
    bits = (bitmask.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1
    allowed = bits.flatten()[: logits.shape[-1]].bool()
    logits.masked_fill_(~allowed, float("-inf"))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


# ---------------------------------------------------------------------- engines
class Llguidance:
    name = "llguidance"

    def setup(self, tokenizer):
        import llguidance.hf

        return llguidance.hf.from_tokenizer(tokenizer)

    def compile(self, info):
        import llguidance

        grammar = llguidance.LLMatcher.grammar_from_json_schema(SCHEMA)
        error = llguidance.LLMatcher.validate_grammar(grammar, info)
        assert not error, error
        return (info, grammar)

    def matcher(self, compiled):
        import llguidance

        info, grammar = compiled
        m = llguidance.LLMatcher(info, grammar)
        assert not m.is_error(), m.get_error()
        return m

    def step(self, m, mask: torch.Tensor, token: int) -> None:
        import llguidance.torch

        llguidance.torch.fill_next_token_bitmask(m, mask)
        assert m.consume_token(token), m.get_error()

    def rollback(self, m, n: int) -> None:
        m.rollback(n)

    def accepting(self, m) -> bool:
        return m.is_accepting()


class Xgrammar:
    name = "xgrammar"

    def setup(self, tokenizer):
        import xgrammar

        return xgrammar.GrammarCompiler(xgrammar.TokenizerInfo.from_huggingface(tokenizer), max_threads=1)

    def compile(self, compiler):
        return compiler.compile_json_schema(SCHEMA)

    def matcher(self, compiled):
        import xgrammar

        return xgrammar.GrammarMatcher(compiled, max_rollback_tokens=200)

    def step(self, m, mask: torch.Tensor, token: int) -> None:
        m.fill_next_token_bitmask(mask)
        assert m.accept_token(token)

    def rollback(self, m, n: int) -> None:
        m.rollback(n)

    def accepting(self, m) -> bool:
        return m.is_completed() if hasattr(m, "is_completed") else m.is_terminated()


class OutlinesCore:
    name = "outlines-core"

    def setup(self, tokenizer):
        """outlines-core needs a {token bytes: ids} map; built here from llguidance's byte decoder
        (outlines' own adapter lives in the full `outlines` package)."""
        import llguidance.hf
        from outlines_core import Vocabulary

        ll = llguidance.hf.from_tokenizer(tokenizer)
        special = set(tokenizer.all_special_ids)
        vocab: dict[bytes, list[int]] = {}
        for token_id in range(ll.vocab_size):
            if token_id in special or ll.is_special_token(token_id):
                continue
            piece = ll.decode_bytes([token_id])
            if piece:
                vocab.setdefault(piece, []).append(token_id)
        return Vocabulary(tokenizer.eos_token_id, vocab)

    def compile(self, vocabulary):
        from outlines_core import Index
        from outlines_core.json_schema import build_regex_from_schema

        return Index(build_regex_from_schema(json.dumps(SCHEMA)), vocabulary)

    def matcher(self, index):
        from outlines_core import Guide

        return Guide(index, max_rollback=200)

    def step(self, m, mask: torch.Tensor, token: int) -> None:
        m.write_mask_into(mask.data_ptr(), mask.numel(), mask.element_size())
        m.advance(token, return_tokens=False)

    def rollback(self, m, n: int) -> None:
        m.rollback_state(n)

    def accepting(self, m) -> bool:
        return m.is_finished()


def measure(engine, tokenizer, repeat: int) -> dict[str, Any]:
    info, setup_s = timed(lambda: engine.setup(tokenizer))
    compiled, compile_s = timed(lambda: engine.compile(info))
    tokens = tokenizer.encode(DOCUMENT, add_special_tokens=False)
    mask = torch.zeros((1, (len(tokenizer) + 31) // 32), dtype=torch.int32)
    per_token: list[float] = []
    for _ in range(repeat):
        m = engine.matcher(compiled)
        start = time.perf_counter()
        for token in tokens:
            engine.step(m, mask, token)
        per_token.append((time.perf_counter() - start) / len(tokens))
    accepting = engine.accepting(m)
    # rollback: undo the last half, re-advance, expect an accepting state again
    try:
        half = len(tokens) // 2
        engine.rollback(m, half)
        for token in tokens[-half:]:
            engine.step(m, mask, token)
        rollback = "yes" if engine.accepting(m) else "broken"
    except Exception as error:  # an engine without rollback
        rollback = f"no ({type(error).__name__})"
    return {"setup_s": setup_s, "compile_s": compile_s, "per_token_ms": 1000 * statistics.median(per_token),
            "tokens": len(tokens), "accepting": accepting, "rollback": rollback}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizers = {m.name: AutoTokenizer.from_pretrained(resolve_preset_member(m)) for m in preset_members("tiny")}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, one thread")
    print(f"schema: {len(json.dumps(SCHEMA))} chars; document: {len(DOCUMENT)} chars")
    for engine in (Llguidance(), Xgrammar(), OutlinesCore()):
        for name, tokenizer in tokenizers.items():
            try:
                r = measure(engine, tokenizer, args.repeat)
            except ImportError as error:
                print(f"{engine.name:14s} not installed ({error.name})")
                break
            except Exception as error:
                print(f"{engine.name:14s} {name:20s} FAILED: {type(error).__name__}: {str(error)[:200]}")
                continue
            print(f"{engine.name:14s} {name:20s} setup {r['setup_s']:6.2f} s  compile {1000 * r['compile_s']:8.1f} ms  "
                  f"mask+advance {r['per_token_ms']:6.3f} ms/token ({r['tokens']} tokens, accepting={r['accepting']})  "
                  f"rollback {r['rollback']}")
    for name, tokenizer in tokenizers.items():
        logits = torch.randn(1, len(tokenizer))
        mask = torch.full((1, (len(tokenizer) + 31) // 32), -1, dtype=torch.int32)
        _, seconds = timed(lambda: [apply_mask(logits.clone(), mask) for _ in range(50)])
        print(f"apply mask to logits ({name}, vocab {len(tokenizer)}): {1000 * seconds / 50:.3f} ms")


if __name__ == "__main__":
    main()
