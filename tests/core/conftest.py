from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, Gemma3TextConfig, LlamaConfig, Qwen2Config

from specfuse_core import Member, PlainPromptFormat, SpecFuse
from specfuse_core.presets import preset_members, resolve_preset_member


@pytest.fixture(scope="session")
def preset_dirs():
    """Safetensors dirs of the tiny preset (converted once; later sessions hit the cache)."""
    return {m.name: resolve_preset_member(m) for m in preset_members("tiny")}


@pytest.fixture(scope="session")
def real_tokenizers(preset_dirs):
    return {name: AutoTokenizer.from_pretrained(path) for name, path in preset_dirs.items()}


def random_model(arch: str, vocab_size: int, seed: int = 0, initializer_range: float = 0.2, hidden_size: int = 64, intermediate_size: int = 128):
    """A 2-layer random-weight causal LM: fast, but with a real vocabulary size."""
    from transformers import AutoModelForCausalLM

    common = dict(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        initializer_range=initializer_range,  # 0.2: varied multilingual output (0.02-init models only emit newlines)
    )
    if arch == "llama":
        config = LlamaConfig(**common)
    elif arch == "qwen2":
        config = Qwen2Config(**common)
    elif arch == "gemma3":
        # a tiny sliding window so tests cross it: exercises the sliding-attention mask
        config = Gemma3TextConfig(**common, head_dim=16, sliding_window=6, layer_types=["sliding_attention", "full_attention"])
    else:
        raise ValueError(arch)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def wide_random_model(arch: str, vocab_size: int = 500, seed: int = 0):
    """A 2-layer random model with layers wide enough (512 -> 2048) for the oneDNN hidden-layer rule to
    apply to a few rows (specfuse_core.local.onednn_linear)."""
    return random_model(arch, vocab_size, seed=seed, initializer_range=0.02, hidden_size=512, intermediate_size=2048)


@pytest.fixture(scope="session")
def random_members(real_tokenizers):
    """Three random-weight members with three different real tokenizers and architectures."""
    smol = real_tokenizers["smollm2-135m"]
    qwen = real_tokenizers["qwen2.5-coder-0.5b"]
    gemma = real_tokenizers["gemma3-270m"]
    return {
        "llama": Member(random_model("llama", len(smol), seed=1), smol, name="llama"),
        "qwen2": Member(random_model("qwen2", len(qwen), seed=2), qwen, name="qwen2"),
        "gemma3": Member(random_model("gemma3", len(gemma), seed=3), gemma, name="gemma3", plain_prompt=PlainPromptFormat()),
    }


@pytest.fixture(scope="session")
def tiny_ensemble():
    """The real tiny preset (three real models), loaded once per session."""
    return SpecFuse.from_preset("tiny")
