"""``specfuse compare``: one report over several ``specfuse eval`` folders on the same dataset (e.g. the
members alone, the uncalibrated ensemble and the calibrated variants, each run with its own
settings), re-checked with the current checkers. Nothing is generated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .datasets import load_dataset
from .records import ItemRecord, read_records
from .report import write_report
from .runner import RESULTS_FILE, SETTINGS_FILE, EvalSettings, rescore


def _rename_map(pairs: list[str]) -> dict[str, str]:
    renames = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise ValueError(f"--rename expects RUN_DIR_NAME:MODE=NEW or MODE=NEW, got {pair!r}")
        renames[old] = new
    return renames


def common_records(records: list[ItemRecord]) -> list[ItemRecord]:
    """Only the items every mode finished: runs stopped at different points compare on the same items
    (every column, costs included, not only the accuracy)."""
    by_mode: dict[str, set[str]] = {}
    for record in records:
        by_mode.setdefault(record.mode, set()).add(record.item_id)
    common = set.intersection(*by_mode.values()) if by_mode else set()
    return [r for r in records if r.item_id in common]


def compare_runs(
    runs: list[Path],
    out: Path,
    renames: list[str] | None = None,
    data_dir: Path | None = None,
    command: str | None = None,
    common_only: bool = False,
    exclude: list[str] | None = None,
) -> dict[str, Any]:
    """Merge the runs' records (modes renamed ``MODE=NEW`` or ``RUN:MODE=NEW``), re-check them, and
    write summary.json, report.md and the plot into ``out``. ``common_only``: on the items every mode
    finished; ``exclude``: modes left out, as ``MODE`` or ``RUN:MODE`` (names before renaming).
    Raises ValueError on mixed datasets, clashing modes, an unknown excluded mode, or no item in common."""
    rename = _rename_map(renames or [])
    excluded = set(exclude or [])
    seen: set[str] = set()
    merged: list[ItemRecord] = []
    sources: dict[str, dict[str, Any]] = {}
    dataset = None
    members: list[str] = []
    for run in runs:
        path = run / SETTINGS_FILE
        if not path.is_file():
            raise ValueError(f"{run} is not a `specfuse eval` folder (no {SETTINGS_FILE})")
        settings = EvalSettings.model_validate_json(path.read_text(encoding="utf-8"))
        if dataset not in (None, settings.dataset):
            raise ValueError(f"{run} holds {settings.dataset!r} results, the others {dataset!r}: compare one dataset at a time")
        dataset = settings.dataset
        members = members or settings.members
        for record in read_records(run / RESULTS_FILE):
            qualified = f"{run.name}:{record.mode}"
            seen.update((record.mode, qualified))
            if record.mode in excluded or qualified in excluded:
                continue
            name = rename.get(qualified, rename.get(record.mode, record.mode))
            if name in sources and sources[name]["run"] != str(run):
                raise ValueError(f"mode {name!r} is in both {sources[name]['run']} and {run}; rename one with --rename {run.name}:{record.mode}=NEW")
            sources.setdefault(name, {"run": str(run), "mode": record.mode, "settings": settings.model_dump()})
            merged.append(record.model_copy(update={"mode": name}))
    if dataset is None:
        raise ValueError("give at least one run folder")
    unused = sorted(excluded - seen)
    if unused:
        raise ValueError(f"--exclude names no mode of these runs: {', '.join(unused)} (use MODE or RUN_DIR_NAME:MODE)")
    if common_only:
        merged = common_records(merged)
        if not merged:
            raise ValueError("no item was finished by every mode: nothing to compare with --common-only")
    items = load_dataset(dataset, data_dir)
    merged = rescore(merged, items)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"settings": {"dataset": dataset, "members": members}, "modes": list(sources), "sources": sources, "command": command, "common_only": common_only}
    return write_report(out, merged, meta)


