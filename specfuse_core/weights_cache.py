"""Local weight files: sha256 checks and a GGUF -> safetensors conversion cache.

Dequantising a GGUF file takes 30-90 s per model on a CPU; the converted weights are saved once as
safetensors under ``SPECFUSE_CACHE`` (default: the user cache dir) so later loads take seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from platformdirs import user_cache_dir

from .errors import ChecksumMismatchError

logger = logging.getLogger(__name__)
_digest_lock = threading.Lock()


def cache_root() -> Path:
    """Where converted weights and assembled preset files live (``SPECFUSE_CACHE`` overrides)."""
    root = Path(os.environ.get("SPECFUSE_CACHE") or user_cache_dir("specfuse"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_of(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so large files are hashed once."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    index_file = cache_root() / "digests.json"
    with _digest_lock:
        index = _read_json(index_file)
        if key in index:
            return index[key]
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        index[key] = digest.hexdigest()
        _write_json(index_file, index)
        return index[key]


def verify_sha256(path: Path, expected: str, hint: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{path} has sha256 {actual}, expected {expected}. The file is corrupt or not the pinned "
            f"release: {hint}"
        )


def converted_dir(gguf_path: Path, digest: str | None = None) -> Path:
    """The safetensors directory for a GGUF file, converting it on first use."""
    from tqdm.auto import tqdm

    gguf_path = Path(gguf_path)
    digest = digest or sha256_of(gguf_path)
    target = cache_root() / "converted" / digest[:32]
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to safetensors (once; cached in %s)", gguf_path.name, target)
    with tqdm(total=2, desc=f"converting {gguf_path.name}", unit="step", leave=False) as bar:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        bar.update(1)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
        bar.update(1)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        _save_dequantized(model, staging)
        tokenizer.save_pretrained(staging)
        _write_json(staging / "specfuse_source.json", {"gguf": str(gguf_path), "sha256": digest})
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").exists():  # lost a race with another process: theirs is fine
            raise
    return target


def _save_dequantized(model, directory: Path) -> None:
    """Save a GGUF-loaded (already fp32) model as plain safetensors.

    ``save_pretrained`` refuses models loaded through the GGUF quantizer, although their weights are
    ordinary dequantised tensors; saving the tensors and a config without ``quantization_config`` gives
    a normal checkpoint.
    """
    from safetensors.torch import save_model

    save_model(model, str(directory / "model.safetensors"))
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(directory)
    model.generation_config.save_pretrained(directory)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
