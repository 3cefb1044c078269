"""The evaluation loop: every pending (item, mode) pair, item by item, with a progress bar; each
result is appended to ``results.jsonl`` as soon as it exists, so runs resume and Ctrl-C loses at most
the item in flight."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from tqdm import tqdm

from ..calibration import TRUST_FIELDS, Calibration
from ..config import EnsembleConfig
from ..engine import SpecFuse
from .checkers import CheckResult, check_last_number, text_checker
from .copying import copies_prompt, restates_prompt
from .datasets import EvalItem
from .errors import EvaluationError
from .modes import Mode, select_modes
from .records import ItemCost, ItemRecord, append_record, cost_of, read_records, trace_summary
from .report import write_report
from .short_answer import SHORT_CHECKERS

RESULTS_FILE = "results.jsonl"
SETTINGS_FILE = "run.json"


class EvalSettings(BaseModel):
    """What makes results comparable; a resumed run must use the same values."""

    dataset: str
    max_tokens: int = Field(ge=1)
    seed: int | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="EnsembleConfig overrides for every mode")
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict, description="named ensemble modes: name -> EnsembleConfig overrides")
    members: list[str] = Field(default_factory=list)
    member_options: dict[str, Any] = Field(default_factory=dict, description="loading options of every member (--member-option)")
    calibration: dict[str, Any] | None = Field(None, description="the trust settings a calibration filled in (weights, roles, lead, gate)")


class SettingsMismatchError(EvaluationError, ValueError):
    """``--out`` holds results made with other settings; resuming would mix incomparable numbers."""


@dataclass
class EvalOutcome:
    records: list[ItemRecord]
    summary: dict[str, Any]
    interrupted: bool
    ran: int
    skipped: int


REPEAT_PROMPT_INSTRUCTION = "combination:repeat_prompt"  # IFEval asks for the copy in these prompts


def copies_its_prompt(item: EvalItem, output: str) -> bool:
    """For short answers: any copied prompt sentence or 8-word run; for GSM8K, IFEval and custom sets
    (longer answers that may quote a phrase): most of the answer copied."""
    if item.checker in SHORT_CHECKERS:
        return copies_prompt(output, item.prompt)
    if item.checker == "ifeval" and REPEAT_PROMPT_INSTRUCTION in item.reference.get("instruction_id_list", []):
        return False
    return restates_prompt(output, item.prompt)


def check(item: EvalItem, output: str) -> CheckResult:
    """The item's verdict with its own checker; an answer that copies the prompt fails (and for IFEval
    fails every instruction, so instruction-level rates count it too)."""
    if item.checker == "ifeval":
        from .ifeval import check_ifeval

        verdict = check_ifeval(output, item.reference)
    elif item.checker == "gsm8k":
        verdict = check_last_number(output, item.reference)
    elif item.checker in SHORT_CHECKERS:
        verdict = SHORT_CHECKERS[item.checker](output, item.reference)
    else:
        verdict = text_checker(item.checker)(output, item.reference)
    if not copies_its_prompt(item, output):
        return verdict
    details = dict(verdict.details, copies_prompt=True)
    if item.checker == "ifeval":
        count = len(details.get("strict", []))
        details.update(strict=[False] * count, loose=[False] * count, prompt_strict=False, prompt_loose=False)
    return CheckResult(correct=False, extracted=verdict.extracted, details=details)


def run_item(item: EvalItem, mode: Mode, settings: EvalSettings) -> ItemRecord:
    """Answer one item in one mode and score it. A generation error is recorded (and counted wrong)."""
    messages = [{"role": "user", "content": item.prompt}]
    overrides = {**settings.config, **mode.overrides, "max_new_tokens": settings.max_tokens, "seed": settings.seed}
    started = time.perf_counter()
    try:
        result = mode.ensemble.generate(messages, **overrides)
    except (EvaluationError, KeyboardInterrupt):
        raise
    except Exception as error:  # one failing item must not end a long run; it is recorded and counted wrong
        cost = ItemCost(wall_seconds=time.perf_counter() - started, forward_calls=0, rounds=0, completion_tokens=0)
        return ItemRecord(
            dataset=settings.dataset, mode=mode.name, item_id=item.id, category=item.category, answer="", correct=False,
            cost=cost, error=f"{type(error).__name__}: {error}",
        )
    wall = time.perf_counter() - started
    verdict = check(item, result.text)
    return ItemRecord(
        dataset=settings.dataset,
        mode=mode.name,
        item_id=item.id,
        category=item.category,
        answer=result.text,
        finish_reason=result.finish_reason,
        correct=verdict.correct,
        extracted=verdict.extracted,
        details=verdict.details,
        cost=cost_of(result, wall),
        trace=trace_summary(result),
    )


def rescore(records: list[ItemRecord], items: list[EvalItem]) -> list[ItemRecord]:
    """Re-check stored answers with the current checkers (after a checker fix), without generating."""
    by_id = {item.id: item for item in items}
    out = []
    for r in records:
        item = by_id.get(r.item_id)
        if item is None or r.error is not None:
            out.append(r)
            continue
        verdict = check(item, r.answer)
        out.append(r.model_copy(update={"correct": verdict.correct, "extracted": verdict.extracted, "details": verdict.details}))
    return out


def _rewrite(path: Path, records: list[ItemRecord]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


# settings only ensemble modes read: a run of members alone may resume under other values of these
ENSEMBLE_ONLY_SETTINGS = {"variants", "calibration"}


def _comparable(settings: EvalSettings, members_only: bool) -> dict[str, Any]:
    """What must match for a run to resume. Ensemble modes compare the settings they run with, the
    overrides and the calibration resolved together, so a run resumes however the same values were
    given (``--set gate_check_rounds=4`` before a preset's calibration shipped it, for example)."""
    if members_only:
        return settings.model_dump(exclude=ENSEMBLE_ONLY_SETTINGS)
    data = settings.model_dump(exclude={"config", "calibration"})
    try:
        config = EnsembleConfig(**settings.config)
        if settings.calibration is not None:
            recorded = dict(settings.calibration)
            trust = {key: recorded.pop(key) for key in TRUST_FIELDS if key in recorded}
            config = Calibration(**trust, settings=recorded).apply(config)
    except (ValidationError, TypeError, AttributeError):  # settings of another version: compare them as written
        return settings.model_dump()
    data["ensemble"] = config.model_dump(mode="json")
    return data


def _check_settings(out: Path, settings: EvalSettings, members_only: bool = False) -> None:
    path = out / SETTINGS_FILE
    if path.is_file():
        previous = EvalSettings.model_validate_json(path.read_text(encoding="utf-8"))
        if _comparable(previous, members_only) != _comparable(settings, members_only):
            raise SettingsMismatchError(
                f"{out} holds results of a run with other settings ({previous.model_dump()}); "
                f"use another --out, or the same settings to resume"
            )
    else:
        path.write_text(settings.model_dump_json(indent=2), encoding="utf-8")


def environment() -> dict[str, Any]:
    """Machine facts for the report (timings depend on them)."""
    import torch

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_evaluation(
    ensemble: SpecFuse,
    items: list[EvalItem],
    out: Path,
    settings: EvalSettings,
    modes: list[str] | None = None,
    progress: bool = True,
    command: str | None = None,
    rescore_stored: bool = False,
    shard: tuple[int, int] | None = None,
) -> EvalOutcome:
    """Run every pending (item, mode), then write the report. Ctrl-C stops after writing the report
    from what finished (``interrupted=True``); running again with the same ``out`` resumes.

    ``shard=(i, n)``: run only items ``i, i+n, i+2n, ...`` and write no report (one of ``n`` worker
    processes sharing ``out``; see ``specfuse eval --jobs``)."""
    out.mkdir(parents=True, exist_ok=True)
    selected = select_modes(ensemble, modes, settings.variants)
    calibration = {**ensemble.calibration.config_fields(), **ensemble.calibration.settings} if ensemble.calibration is not None else None
    settings = settings.model_copy(update={"members": ensemble.member_names, "calibration": calibration})
    _check_settings(out, settings, members_only=all(mode.is_member for mode in selected))
    results_path = out / RESULTS_FILE
    records = read_records(results_path)
    if rescore_stored and records:
        records = rescore([r for r in records if r.dataset == settings.dataset], items) + [r for r in records if r.dataset != settings.dataset]
        _rewrite(results_path, records)
    done = {r.key for r in records}
    mine = items if shard is None else items[shard[0] :: shard[1]]
    pending = [(item, mode) for item in mine for mode in selected if (settings.dataset, mode.name, item.id) not in done]
    skipped = len(mine) * len(selected) - len(pending)
    interrupted = False
    ran = 0
    bar = tqdm(total=len(pending), disable=not progress, unit="answer", dynamic_ncols=True)
    try:
        for item, mode in pending:
            bar.set_postfix_str(f"{item.id} {mode.name}", refresh=False)
            record = run_item(item, mode, settings)
            append_record(results_path, record)
            records.append(record)
            ran += 1
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if shard is not None:
        return EvalOutcome(records=[], summary={}, interrupted=interrupted, ran=ran, skipped=skipped)
    records = read_records(results_path)  # other worker processes may have added lines
    wanted = {mode.name for mode in selected}
    item_ids = {item.id for item in items}
    shown = [r for r in records if r.mode in wanted and r.item_id in item_ids and r.dataset == settings.dataset]
    meta = {
        "settings": settings.model_dump(),
        "modes": [mode.name for mode in selected],
        "items_requested": len(items),
        "interrupted": interrupted,
        "command": command,
        "environment": environment(),
    }
    summary = write_report(out, shown, meta)
    return EvalOutcome(records=shown, summary=summary, interrupted=interrupted, ran=ran, skipped=skipped)

