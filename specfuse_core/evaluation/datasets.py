"""Evaluation items: the public GSM8K and IFEval files, or a custom JSONL, read from a path the user
gives (never shipped in the package)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .checkers import TEXT_CHECKERS, gsm8k_reference
from .short_answer import SHORT_CHECKERS
from .errors import BadDatasetLineError, DatasetNotFoundError, UnknownCheckerError, UnknownDatasetError

PUBLIC_FILES = {"gsm8k": "gsm8k_test.jsonl", "ifeval": "ifeval_input_data.jsonl"}
BUILTIN_SETS = ("dev", "heldout")  # shipped with the package: see devset.py and heldout.py
GET_DATA_HINT = (
    "get gsm8k_test.jsonl from github.com/openai/grade-school-math (grade_school_math/data/test.jsonl) and "
    "ifeval_input_data.jsonl from github.com/google-research/google-research "
    "(instruction_following_eval/data/input_data.jsonl), then pass --data-dir DIR; see docs/evaluation.md"
)

# Small models rarely finish with a bare number unless asked; the harness reads the last number.
GSM8K_INSTRUCTION = "Solve the problem step by step, then give the final answer as a number on the last line."


class EvalItem(BaseModel):
    """One question. ``reference`` is what the checker compares against (for IFEval: the record)."""

    id: str
    prompt: str
    reference: Any
    checker: str = Field(description="gsm8k, ifeval, or a text or short-answer checker name")
    category: str | None = Field(None, description="reported separately (the dev set: facts, arithmetic, instructions)")


def default_data_dir(cwd: Path | None = None) -> Path | None:
    """``../shared/data`` relative to the working directory, when it exists."""
    candidate = (cwd or Path.cwd()) / ".." / "shared" / "data"
    return candidate.resolve() if candidate.is_dir() else None


def _read_jsonl(path: Path, required: tuple[str, ...], limit: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise DatasetNotFoundError(f"data file {path} does not exist; {GET_DATA_HINT}")
    count = 0
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and count >= limit:
                return
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise BadDatasetLineError(str(path), number, f"not valid JSON ({error.msg}); each line must be one JSON object") from None
            if not isinstance(record, dict):
                raise BadDatasetLineError(str(path), number, "each line must be a JSON object")
            missing = [field for field in required if field not in record]
            if missing:
                raise BadDatasetLineError(str(path), number, f"missing field(s) {', '.join(missing)}; required: {', '.join(required)}")
            count += 1
            yield number, record


def load_gsm8k(path: Path, limit: int | None = None) -> list[EvalItem]:
    items = []
    for number, record in _read_jsonl(path, ("question", "answer"), limit):
        try:
            reference = gsm8k_reference(record["answer"])
        except ValueError as error:
            raise BadDatasetLineError(str(path), number, str(error)) from None
        prompt = f"{record['question']}\n\n{GSM8K_INSTRUCTION}"
        items.append(EvalItem(id=f"gsm8k-{number - 1}", prompt=prompt, reference=reference, checker="gsm8k"))
    return items


def load_ifeval(path: Path, limit: int | None = None) -> list[EvalItem]:
    required = ("key", "prompt", "instruction_id_list", "kwargs")
    return [
        EvalItem(id=f"ifeval-{record['key']}", prompt=record["prompt"], reference=record, checker="ifeval")
        for _, record in _read_jsonl(path, required, limit)
    ]


ITEM_CHECKERS = {**TEXT_CHECKERS, **SHORT_CHECKERS}


def load_custom(path: Path, checker: str, limit: int | None = None, prompt_field: str = "prompt", answer_field: str = "answer") -> list[EvalItem]:
    """A JSONL with one object per line: ``prompt``, ``answer`` and optionally ``id``, ``category`` and
    ``checker`` (a line's own checker wins over the ``checker`` argument)."""
    if checker not in ITEM_CHECKERS:
        raise UnknownCheckerError(f"unknown checker {checker!r} for {path}; choose one of: {', '.join(ITEM_CHECKERS)}")
    items: list[EvalItem] = []
    seen: set[str] = set()
    for number, record in _read_jsonl(path, (prompt_field, answer_field), limit):
        line_checker = str(record.get("checker", checker))
        if line_checker not in ITEM_CHECKERS:
            raise BadDatasetLineError(str(path), number, f"unknown checker {line_checker!r}; choose one of: {', '.join(ITEM_CHECKERS)}")
        if line_checker == "regex":
            try:
                re.compile(str(record[answer_field]))
            except re.error as error:
                raise BadDatasetLineError(str(path), number, f"answer is not a valid regular expression ({error})") from None
        item_id = str(record.get("id", f"{path.stem}-{number - 1}"))
        if item_id in seen:
            raise BadDatasetLineError(str(path), number, f"id {item_id!r} repeats an earlier line; ids must be unique (resume relies on them)")
        seen.add(item_id)
        category = record.get("category")
        items.append(
            EvalItem(
                id=item_id, prompt=str(record[prompt_field]), reference=record[answer_field], checker=line_checker,
                category=None if category is None else str(category),
            )
        )
    return items


def load_dataset(dataset: str, data_dir: Path | None = None, limit: int | None = None, checker: str | None = None) -> list[EvalItem]:
    """``gsm8k`` / ``ifeval`` (from ``data_dir``: a folder holding the public file, or the file itself;
    default ``../shared/data``), ``dev`` / ``heldout`` (the built-in short-answer sets, see :mod:`.devset`
    and :mod:`.heldout`) or a path to
    a ``.jsonl`` with a text checker."""
    if dataset == "dev":
        from .devset import DEV_FILE

        return load_custom(DEV_FILE, "exact-match", limit)
    if dataset == "heldout":
        from .heldout import HELDOUT_FILE

        return load_custom(HELDOUT_FILE, "exact-match", limit)
    if dataset in PUBLIC_FILES:
        directory = data_dir or default_data_dir()
        if directory is None:
            raise DatasetNotFoundError(f"no data directory for {dataset!r}: ../shared/data does not exist; {GET_DATA_HINT}")
        path = Path(directory) if Path(directory).is_file() else Path(directory) / PUBLIC_FILES[dataset]
        return load_gsm8k(path, limit) if dataset == "gsm8k" else load_ifeval(path, limit)
    if dataset.endswith(".jsonl"):
        return load_custom(Path(dataset), checker or "exact-match", limit)
    raise UnknownDatasetError(f"unknown dataset {dataset!r}: use gsm8k, ifeval, dev, heldout, or a path to a .jsonl file")
