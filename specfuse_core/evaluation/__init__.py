"""Evaluation harness: does the ensemble beat its members, and at what cost? (``specfuse eval``)

Modules: :mod:`.datasets` (items), :mod:`.checkers` and :mod:`.ifeval` (verdicts), :mod:`.modes`
(what is compared), :mod:`.analysis` (why the ensemble lost an item), :mod:`.runner` (the resumable loop), :mod:`.records` and :mod:`.report` (output)."""

from .analysis import lost_items, overruled_rounds
from .checkers import CheckResult, last_number, parse_number
from .datasets import EvalItem, load_dataset
from .errors import (
    BadDatasetLineError,
    DatasetNotFoundError,
    EvaluationError,
    MissingEvalDependencyError,
    UnknownCheckerError,
    UnknownDatasetError,
    UnknownModeError,
)
from .modes import Mode, select_modes
from .records import ItemRecord
from .report import markdown_table, summarize, write_report
from .runner import EvalOutcome, EvalSettings, SettingsMismatchError, run_evaluation

__all__ = [
    "BadDatasetLineError",
    "CheckResult",
    "DatasetNotFoundError",
    "EvalItem",
    "EvalOutcome",
    "EvalSettings",
    "EvaluationError",
    "ItemRecord",
    "MissingEvalDependencyError",
    "Mode",
    "SettingsMismatchError",
    "UnknownCheckerError",
    "UnknownDatasetError",
    "UnknownModeError",
    "last_number",
    "lost_items",
    "overruled_rounds",
    "load_dataset",
    "markdown_table",
    "parse_number",
    "run_evaluation",
    "select_modes",
    "summarize",
    "write_report",
]
