"""IFEval scoring through the maintained ``if-verifiable`` package (Google's instruction checks).

Two instruction types split text into sentences with NLTK's ``punkt_tab``, which cannot be
downloaded offline; llama-index-core's wheel ships it, so ``NLTK_DATA`` is pointed there (found via
importlib, nothing is downloaded). ``random`` and ``langdetect`` are seeded so scores repeat."""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path
from typing import Any

from .checkers import CheckResult
from .errors import MissingEvalDependencyError

INSTALL_HINT = 'pip install "specfuse[eval]"  (if-verifiable, langdetect, nltk, llama-index-core for punkt_tab)'


def bundled_nltk_data() -> Path | None:
    """llama-index-core's NLTK cache (holds ``tokenizers/punkt_tab``), or None if not installed."""
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "_static" / "nltk_cache"
    return path if (path / "tokenizers" / "punkt_tab").is_dir() else None


def configure_nltk() -> None:
    """Add the bundled punkt_tab to NLTK's search path (the user's own NLTK_DATA stays first)."""
    path = bundled_nltk_data()
    if path is None:
        return
    existing = os.environ.get("NLTK_DATA", "")
    if str(path) not in existing.split(os.pathsep):
        os.environ["NLTK_DATA"] = os.pathsep.join(p for p in (existing, str(path)) if p)
    try:
        import nltk
    except ImportError:
        return
    if str(path) not in nltk.data.path:
        nltk.data.path.append(str(path))


def scorer_registry() -> dict[str, Any]:
    configure_nltk()
    try:
        from if_verifiable.common import evaluate_instructions  # noqa: F401
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as error:
        raise MissingEvalDependencyError(f"IFEval scoring needs the eval extra: {INSTALL_HINT} ({error})") from error
    return INSTRUCTION_DICT


def seed_scorers(seed: int = 0) -> None:
    """Make instruction checks repeatable: some checkers draw random defaults, langdetect is random."""
    random.seed(seed)
    try:
        from langdetect import DetectorFactory
    except ImportError:
        return
    DetectorFactory.seed = 0


def check_ifeval(output: str, record: dict[str, Any]) -> CheckResult:
    """Strict and loose verdicts for one IFEval record (``instruction_id_list``, ``kwargs``, ``prompt``).

    ``correct`` is prompt-level strict accuracy. An empty (or whitespace-only) answer fails every
    instruction: the scorer package would return no per-instruction rows for it, which would drop
    those instructions from instruction-level accuracy."""
    from if_verifiable.common import evaluate_instructions

    registry = scorer_registry()
    instructions = list(record["instruction_id_list"])
    seed_scorers()
    if output.strip():
        results, _ = evaluate_instructions(
            response=output,
            instruction_id_list=instructions,
            kwargs_list=list(record["kwargs"]),
            prompt=record["prompt"],
            instruction_registry=registry,
        )
        rows = iter(results)  # one row per known instruction, in order; unknown ids are skipped
        verdicts = [next(rows) if i in registry else None for i in instructions]
    else:
        verdicts = [None] * len(instructions)
    # Unknown instruction ids (and every instruction of an empty answer) count as failures.
    strict_list = [bool(v is not None and v.strict_pass) for v in verdicts]
    loose_list = [bool(v is not None and v.loose_pass) for v in verdicts]
    return CheckResult(
        correct=all(strict_list),
        details={
            "instructions": instructions,
            "strict": strict_list,
            "loose": loose_list,
            "prompt_strict": all(strict_list),
            "prompt_loose": all(loose_list),
        },
    )
