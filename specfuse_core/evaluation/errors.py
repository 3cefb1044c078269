"""Errors the evaluation harness raises for bad input; each says how to fix it."""

from __future__ import annotations

from ..errors import SpecFuseError


class EvaluationError(SpecFuseError):
    """Base class of the evaluation harness's errors."""


class DatasetNotFoundError(EvaluationError, FileNotFoundError):
    """A data file the run needs does not exist."""


class UnknownDatasetError(EvaluationError, ValueError):
    """``--dataset`` is neither a known public set nor a ``.jsonl`` file."""


class BadDatasetLineError(EvaluationError, ValueError):
    """A JSONL line is not valid JSON or lacks a required field."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        super().__init__(f"{path}, line {line}: {problem}")


class UnknownCheckerError(EvaluationError, ValueError):
    """A checker name that does not exist."""


class UnknownModeError(EvaluationError, ValueError):
    """A ``--modes`` entry that names neither an ensemble mode nor a member."""


class MissingEvalDependencyError(EvaluationError, ImportError):
    """An optional package of the ``eval`` extra is not installed."""
