"""A wrong member string gives one named error, up front, saying what was looked for and where
(issue 13 item 3); the CLI prints it in one line with exit status 2."""

from __future__ import annotations

import socket

import pytest

from specfuse_core import Member, ModelLoadError, ModelNotFoundError
from specfuse_core.cli import main
from specfuse_core.loading import model_spec_member
from specfuse_core.model_specs import resolve_model_spec


@pytest.fixture
def cases(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with_gguf = tmp_path / "downloads"
    with_gguf.mkdir()
    (with_gguf / "model.Q4.gguf").write_bytes(b"GGUF")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hi")
    (tmp_path / "dir.gguf").mkdir()
    return {
        "missing path": (str(tmp_path / "nonexistent" / "dir"), "does not exist"),
        "absolute missing": ("/nonexistent", "path /nonexistent does not exist"),
        "not a model dir": (str(empty), "is not a model directory (no config.json)"),
        "dir holding a gguf": (str(with_gguf), "it holds model.Q4.gguf: pass that file"),
        "missing gguf": (str(tmp_path / "missing.gguf"), "GGUF file"),
        "gguf is a dir": (str(tmp_path / "dir.gguf"), "is a directory, not a file"),
        "a file": (str(text_file), "is a file but not a .gguf file"),
        "not a hub id": ("a b c", "is not a hub id"),
        "empty": ("  ", "empty string"),
    }


def test_each_mistake_is_named(cases):
    for name, (spec, message) in cases.items():
        with pytest.raises(ModelNotFoundError) as caught:
            resolve_model_spec(spec)
        assert message in str(caught.value), name
        assert caught.value.spec == spec.strip() or name == "empty"


def test_uncached_hub_id_while_offline_names_the_cache(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match=r"not in the local cache \(.*\) while the hub is offline"):
        resolve_model_spec("someorg/no-such-model")


def test_uncached_hub_id_without_network_fails_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(ModelNotFoundError, match=r"cannot be reached \(Name or service not known\)"):
        model_spec_member("someorg/no-such-model")


def test_a_valid_model_directory_resolves(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_spec(tmp_path) == ("pretrained", str(tmp_path))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model_spec(str(gguf)) == ("gguf", str(gguf))


def test_member_constructors_check_too(tmp_path, monkeypatch):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        Member.from_gguf(tmp_path / "missing.gguf")
    with pytest.raises(ModelNotFoundError, match="not a model directory"):
        Member.from_pretrained(tmp_path)
    monkeypatch.setenv("SPECFUSE_CACHE", str(tmp_path / "cache"))
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"this is not a GGUF file at all" * 10)
    with pytest.raises(ModelLoadError, match="could not convert the GGUF file"):
        Member.from_gguf(corrupt)


@pytest.mark.parametrize("command", [["chat", "hi"], ["eval", "--dataset", "gsm8k", "--out", "OUT"]])
def test_cli_prints_one_line_and_exits_2(cases, command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cases["uncached hub id"] = ("someorg/no-such-model", "not in the local cache")
    command = [str(tmp_path / "out") if part == "OUT" else part for part in command]
    for name, (spec, message) in cases.items():
        if not spec.strip():
            continue
        assert main([*command, "--model", spec]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: model "), (name, err)
        assert message in err, (name, err)
        assert "Traceback" not in err


def test_adapters_check_models_at_construction(tmp_path):
    from langchain_specfuse import ChatSpecFuse
    from llamaindex_specfuse import SpecFuseLLM

    with pytest.raises(ModelNotFoundError, match="does not exist"):
        ChatSpecFuse(models=[str(tmp_path / "nonexistent" / "dir")])
    with pytest.raises(ModelNotFoundError, match="not a model directory"):
        SpecFuseLLM(models=[str(tmp_path)])
