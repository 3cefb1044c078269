"""Fixtures of the remote-member tests: a real llama-cpp-python server on loopback serving the tiny
preset's SmolLM2 GGUF (started once per session), and the local SmolLM2 member loaded from the
same file (transformers, fp32 dequantisation)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from specfuse_core.presets import preset_members, resolve_preset_member
from specfuse_core.remote import RemoteMember, RemoteMemberConfig

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SMOLLM2 = "smollm2-135m"


def smollm2_gguf() -> Path:
    """The preset's SmolLM2 file, located without importing its package (it needs ``llm``)."""
    entry = next(m for m in preset_members("tiny") if m.name == SMOLLM2)
    return entry.locate()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted safetensors directory: the local member's weights and both members' tokenizer."""
    entry = next(m for m in preset_members("tiny") if m.name == SMOLLM2)
    return resolve_preset_member(entry)


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_dir))


def _require_server() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        # A failure, not a skip: a silent skip would hide a missing install step (see README).
        pytest.fail("llama-cpp-python[server] is not installed: run bash .ci/install_llama_cpp_server.sh")


@pytest.fixture(scope="session")
def smollm2_server(tmp_path_factory):
    _require_server()
    from specfuse_core.remote.launch import LlamaCppServer

    server = LlamaCppServer(smollm2_gguf(), "smollm2", n_threads=1, log_path=tmp_path_factory.mktemp("server") / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def server_factory(tmp_path):
    """Extra servers for one test (the kill test owns its server); stopped afterwards."""
    _require_server()
    from specfuse_core.remote.launch import LlamaCppServer

    started: list[LlamaCppServer] = []

    def start(alias: str = "smollm2") -> LlamaCppServer:
        server = LlamaCppServer(smollm2_gguf(), alias, n_threads=1, log_path=tmp_path / f"{alias}-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def remote_config(server, **settings) -> RemoteMemberConfig:
    return RemoteMemberConfig(**{"base_url": server.base_url, "model": server.alias, **settings})


@pytest.fixture(scope="session")
def remote_smollm2(smollm2_server, smollm2_tokenizer):
    member = RemoteMember(remote_config(smollm2_server, name="smollm2-remote"), tokenizer=smollm2_tokenizer)
    yield member
    member.close()


@pytest.fixture(scope="session")
def local_smollm2():
    from specfuse_core.loading import cached_member

    return cached_member("preset", f"tiny/{SMOLLM2}", SMOLLM2)
