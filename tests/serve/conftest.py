"""Fixtures of the server tests: a small real ensemble (two random-weight 2-layer models with the tiny
preset's real tokenizers: real rounds in milliseconds) served on loopback, and the real tiny preset
(loaded once per session) for the end-to-end tests."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

from specfuse_core import EnsembleConfig, Member, SpecFuse
from specfuse_core.presets import preset_members, resolve_preset_member
from specfuse_core.serve import ServeLimits, ServerThread, ServeSettings, create_app

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "specfuse-test"
KEY = "sk-test-key"


def random_causal_lm(config_class, vocab_size: int, seed: int):
    """A 2-layer random-weight LM with a real vocabulary (0.2-init: varied text, rarely an end of turn)."""
    config = config_class(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True, initializer_range=0.2,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="session")
def tokenizer_dirs():
    return {m.name: resolve_preset_member(m) for m in preset_members("tiny") if m.name in ("smollm2-135m", "qwen2.5-coder-0.5b")}


@pytest.fixture(scope="session")
def small_members(tokenizer_dirs):
    smol = AutoTokenizer.from_pretrained(tokenizer_dirs["smollm2-135m"])
    qwen = AutoTokenizer.from_pretrained(tokenizer_dirs["qwen2.5-coder-0.5b"])
    return [
        Member(random_causal_lm(LlamaConfig, len(smol), seed=1), smol, name="llama"),
        Member(random_causal_lm(Qwen2Config, len(qwen), seed=2), qwen, name="qwen2"),
    ]


@pytest.fixture(scope="session")
def small_ensemble(small_members):
    return ensemble_over(small_members)


def ensemble_over(members):
    """A fresh ensemble over the small members, as the serve tests configure it."""
    return SpecFuse(members, EnsembleConfig(segment_tokens=4))


LIMITS = ServeLimits(max_body_bytes=64 * 1024, max_messages=8, max_prompt_chars=4000, max_tokens_cap=400, default_max_tokens=12, max_concurrent_requests=16)


@pytest.fixture(scope="session")
def small_server(small_ensemble):
    """The small ensemble on loopback, no API key (shared by the read-only tests)."""
    with ServerThread(create_app(small_ensemble, ServeSettings(model_name=MODEL, limits=LIMITS))) as server:
        yield server


@pytest.fixture()
def client(small_server):
    from openai import OpenAI

    with OpenAI(base_url=small_server.base_url, api_key="unused", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def tiny_ensemble():
    """The real tiny preset with its calibration, as `specfuse serve` builds it; loaded once."""
    return SpecFuse.from_preset("tiny")


@pytest.fixture(scope="session")
def tiny_server(tiny_ensemble):
    with ServerThread(create_app(tiny_ensemble, ServeSettings(model_name="specfuse-tiny"))) as server:
        yield server
