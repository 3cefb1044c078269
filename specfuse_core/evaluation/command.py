"""``specfuse eval``: argument definitions and the command body (wired into :mod:`specfuse_core.cli`)."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import SpecFuseError

DATASET_HELP = "dev or heldout (the built-in short-answer sets), gsm8k, ifeval, or a .jsonl file with prompt and answer fields (see --checker)"


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help=DATASET_HELP)
    parser.add_argument("--data-dir", type=Path, default=None, help="folder (or file) holding the public set; default ../shared/data")
    parser.add_argument("--checker", default="exact-match", choices=["exact-match", "contains", "last-number", "regex"], help="checker for a custom .jsonl")
    parser.add_argument("--preset", default=None, help="packaged ensemble (default: tiny, unless --model is given)")
    parser.add_argument("--model", action="append", default=[], metavar="PATH_OR_ID", help="a member: .gguf file, directory or hub id (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="first N items")
    parser.add_argument("--category", default=None, help="only items of this category (the dev set: facts, arithmetic, instructions)")
    parser.add_argument("--max-tokens", type=int, default=256, help="max new tokens per answer")
    parser.add_argument("--seed", type=int, default=None, help="seed for sampled drafts (greedy by default)")
    parser.add_argument("--modes", default="all", help="comma-separated: all, members, a member name, ensemble, ensemble_exit, ensemble_hedge")
    parser.add_argument("--out", type=Path, required=True, help="output folder; an existing one is resumed")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="EnsembleConfig override for every mode, e.g. --set exclude_self_vote=true (repeatable)")
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME:FIELD=VALUE[;FIELD=VALUE]",
        help="a named ensemble mode with its own EnsembleConfig overrides, e.g. --variant gated:gate_threshold=-0.3 (repeatable; runs under --modes all or by name)",
    )
    parser.add_argument(
        "--member-option", action="append", default=[], metavar="OPTION=VALUE",
        help=f"a loading option for every member (repeatable): {', '.join(MEMBER_OPTIONS)}, e.g. --member-option onednn_hidden_layers=false",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes, each answering every N-th item (default 1)")
    parser.add_argument("--calibration", default=None, help="calibration file for the ensemble modes; 'none' for none (default: the preset's own, if it ships one)")
    parser.add_argument(
        "--leave-one-out", action="store_true",
        help="with a routing calibration fitted on this very set: each item is routed without its own label (honest accuracy)",
    )
    parser.add_argument("--shard", default=None, help=argparse.SUPPRESS)  # I/N: set by --jobs for its workers
    parser.add_argument("--rescore", action="store_true", help="re-check answers already in --out with the current checkers first")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _sigterm_as_interrupt(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


# Member loading options `specfuse eval --member-option` passes to every member's loader (Member.from_pretrained)
MEMBER_OPTIONS = ("dtype", "device", "decode_block", "onednn_output_layer", "onednn_hidden_layers")


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # a bare string such as rank or bfloat16


def parse_member_options(pairs: list[str]) -> dict[str, Any]:
    """``["onednn_hidden_layers=false"]`` -> ``{"onednn_hidden_layers": False}``; values are checked by the loader."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--member-option expects OPTION=VALUE, got {pair!r}")
        if name not in MEMBER_OPTIONS:
            raise ValueError(f"--member-option: unknown option {name!r}; one of {', '.join(MEMBER_OPTIONS)}")
        options[name] = _json_or_text(raw)
    return options


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["score_temperature=0.5", "normalization=rank"]`` -> validated EnsembleConfig overrides."""
    from ..config import EnsembleConfig

    overrides: dict[str, Any] = {}
    for pair in pairs:
        field, sep, raw = pair.partition("=")
        if not sep or not field.strip():
            raise ValueError(f"--set expects FIELD=VALUE, got {pair!r}")
        overrides[field.strip()] = _json_or_text(raw)
    EnsembleConfig(**overrides)  # unknown fields and bad values fail here, with pydantic's message
    return overrides


def parse_variants(specs: list[str]) -> dict[str, dict[str, Any]]:
    """``["gated:gate_threshold=-0.3;roles={...}"]`` -> {"gated": {...}}, each validated."""
    variants: dict[str, dict[str, Any]] = {}
    for spec in specs:
        name, sep, body = spec.partition(":")
        if not sep or not name.strip() or name.strip() in variants:
            raise ValueError(f"--variant expects a new NAME:FIELD=VALUE[;FIELD=VALUE], got {spec!r}")
        variants[name.strip()] = parse_overrides([p for p in body.split(";") if p.strip()])
    return variants


def _without_jobs(argv: Sequence[str]) -> list[str]:
    """The command line minus ``--jobs N`` / ``--jobs=N``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--jobs":
            skip = True
        elif not arg.startswith("--jobs="):
            out.append(arg)
    return out


def _run_workers(jobs: int, argv: Sequence[str] | None) -> None:
    """Start ``jobs`` copies of this command, each on every ``jobs``-th item, and wait for them."""
    import subprocess

    args = _without_jobs(list(sys.argv[1:] if argv is None else argv))
    workers = [
        subprocess.Popen([sys.executable, "-m", "specfuse_core.cli", *args, "--shard", f"{i}/{jobs}", "--no-progress"])
        for i in range(jobs)
    ]
    try:
        codes = [w.wait() for w in workers]
    except KeyboardInterrupt:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait()
        raise
    if any(code not in (0, 130) for code in codes):
        raise RuntimeError(f"an eval worker failed (exit codes {codes}); run again with the same --out to resume")


def _calibration_arg(value: str | None, preset: str | None, leave_one_out: bool = False):
    """``--calibration``: a file, 'none', or (unset) the preset's shipped calibration; with
    ``leave_one_out`` its router ignores a labelled prompt identical to the one it routes."""
    from ..calibration import Calibration
    from ..presets import preset_calibration

    if value is None:
        calibration = preset_calibration(preset) if preset else None
    else:
        calibration = None if value.lower() == "none" else Path(value)
    if not leave_one_out:
        return calibration
    if calibration is not None and not isinstance(calibration, Calibration):
        calibration = Calibration.load(calibration)
    if calibration is None or calibration.router is None:
        raise ValueError("--leave-one-out needs a calibration with a router (specfuse calibrate --router)")
    return calibration.model_copy(update={"router": calibration.router.model_copy(update={"leave_one_out": True})})


def _parse_shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    return int(index), int(count)


def run_eval_command(args: argparse.Namespace, err, argv: Sequence[str] | None = None) -> int:
    """Run the harness; 0 when done, 130 when interrupted (the partial report is written), 2 on bad input."""
    from ..config import EnsembleConfig
    from ..engine import SpecFuse
    from ..loading import check_model_specs, load_preset_members, model_spec_member
    from .datasets import load_dataset
    from .runner import EvalSettings, run_evaluation

    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)  # `kill` leaves a valid partial report too
    try:
        if args.limit is not None and args.limit < 1:
            raise ValueError("--limit must be at least 1")
        if args.max_tokens < 1:  # before any model loads
            raise ValueError("--max-tokens must be at least 1")
        overrides = parse_overrides(args.set)
        member_options = parse_member_options(args.member_option)
        variants = parse_variants(args.variant)
        if args.jobs < 1:
            raise ValueError("--jobs must be at least 1")
        shard = _parse_shard(args.shard) if args.shard else None
        check_model_specs(args.model)  # a wrong --model fails before data and models load
        items = load_dataset(args.dataset, args.data_dir, None if args.category else args.limit, args.checker)
        if args.category:
            items = [item for item in items if item.category == args.category][: args.limit]
            if not items:
                raise ValueError(f"no item of category {args.category!r} in {args.dataset}")
        if args.dataset == "ifeval":
            from .ifeval import scorer_registry

            scorer_registry()  # fail before loading models when the scorer is missing
        if args.jobs > 1 and shard is None:
            _run_workers(args.jobs, argv)  # then this process only writes the report
        members = []
        use_preset = bool(args.preset or not args.model)
        calibration = _calibration_arg(args.calibration, args.preset or "tiny" if use_preset and not args.model else None, args.leave_one_out)
        if use_preset:
            members.extend(load_preset_members(args.preset or "tiny", **member_options))
        members.extend(model_spec_member(spec, **member_options) for spec in args.model)
        ensemble = SpecFuse(members, EnsembleConfig(), calibration=calibration)
        settings = EvalSettings(
            dataset=args.dataset, max_tokens=args.max_tokens, seed=args.seed, config=overrides, variants=variants, member_options=member_options
        )
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        outcome = run_evaluation(
            ensemble, items, args.out, settings, modes, progress=not args.no_progress,
            command="specfuse " + shlex.join(list(sys.argv[1:] if argv is None else argv)), rescore_stored=args.rescore, shard=shard,
        )
    except KeyboardInterrupt:
        err.print("interrupted before any item ran", markup=False)
        return 130
    except (SpecFuseError, ValueError, OSError) as error:  # OSError: e.g. an --out folder that cannot be written
        from ..cli import print_error

        print_error(err, error, {"max_new_tokens": "--max-tokens", "max_tokens": "--max-tokens", "seed": "--seed"})
        return 2
    state = "interrupted; partial report" if outcome.interrupted else "done"
    err.print(f"{state}: {outcome.ran} answers this run, {outcome.skipped} resumed; report in {args.out}", markup=False)
    return 130 if outcome.interrupted else 0


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="dev", help="labelled set: dev (built in, default), heldout (built in, never tuned on), gsm8k, ifeval or a .jsonl file")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder (or file) holding a public set; default ../shared/data")
    parser.add_argument("--checker", default="exact-match", choices=["exact-match", "contains", "last-number", "regex"], help="checker for a custom .jsonl")
    parser.add_argument("--preset", default=None, help="packaged ensemble (default: tiny, unless --model is given)")
    parser.add_argument("--model", action="append", default=[], metavar="PATH_OR_ID", help="a member: .gguf file, directory or hub id (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="first N items")
    parser.add_argument("--max-tokens", type=int, default=48, help="max new tokens per answer (default 48: the dev set wants short answers)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the members' runs")
    parser.add_argument("--out", type=Path, required=True, help="the calibration file to write (JSON)")
    parser.add_argument("--work", type=Path, default=None, help="eval folder for the members' answers (default: OUT without .json + '-runs'); resumable")
    parser.add_argument("--from-run", type=Path, default=None, help="fit from an existing `specfuse eval` folder instead of answering again")
    parser.add_argument("--sharpness", type=float, default=5.0, help="weight = exp(sharpness * (accuracy - best accuracy))")
    parser.add_argument("--verify-only-below", type=float, default=0.5, help="members below this share of the best accuracy only verify")
    parser.add_argument("--gate-threshold", type=float, default=None, help="record a confidence-gating threshold (mean log-prob of the lead's segment) in the file")
    parser.add_argument("--setting", action="append", default=[], metavar="FIELD=VALUE", help="record another EnsembleConfig setting evaluated with this calibration (repeatable)")
    parser.add_argument("--router", action="store_true", help="also store each labelled prompt with the members' outcomes, so trust is re-fitted per prompt on its nearest labelled prompts")
    parser.add_argument(
        "--router-demotes-to", choices=("verify", "reserve", "reserve_if_stronger"), default="verify",
        help="role of a member the router finds weak on a prompt: verify only, or reserve (also drafts when the gate does not "
        "settle a round); reserve_if_stronger: a reserve only behind a lead trusted less overall",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def member_accuracy(run_dir: Path, members: Sequence[str] | None = None, data_dir: Path | None = None) -> tuple[dict[str, float], int, str]:
    """Each member's accuracy alone in an eval folder, on the items every member answered, re-checked
    with the current checkers."""
    accuracy, outcomes, dataset = member_outcomes(run_dir, members, data_dir)
    return accuracy, len(outcomes), dataset


def member_outcomes(
    run_dir: Path, members: Sequence[str] | None = None, data_dir: Path | None = None
) -> tuple[dict[str, float], dict[str, tuple[str, dict[str, bool]]], str]:
    """As :func:`member_accuracy`, with each common item's prompt and per-member verdicts (by item id)."""
    from .datasets import load_dataset
    from .records import read_records
    from .runner import RESULTS_FILE, SETTINGS_FILE, EvalSettings, rescore

    settings_path = run_dir / SETTINGS_FILE
    if not settings_path.is_file():
        raise ValueError(f"{run_dir} is not a `specfuse eval` folder (no {SETTINGS_FILE})")
    settings = EvalSettings.model_validate_json(settings_path.read_text(encoding="utf-8"))
    names = list(members or settings.members)
    dataset_items = load_dataset(settings.dataset, data_dir)
    records = rescore([r for r in read_records(run_dir / RESULTS_FILE) if r.mode in names], dataset_items)
    answered = [{r.item_id for r in records if r.mode == n} for n in names]
    common = set.intersection(*answered) if answered else set()
    if not common:
        raise ValueError(f"{run_dir} has no item that every member ({', '.join(names)}) answered alone; run `specfuse eval --modes members` there first")
    accuracy = {n: sum(r.correct for r in records if r.mode == n and r.item_id in common) / len(common) for n in names}
    prompts = {item.id: item.prompt for item in dataset_items}
    verdicts: dict[str, dict[str, bool]] = {item_id: {} for item_id in common}
    for r in records:
        if r.item_id in common:
            verdicts[r.item_id][r.mode] = bool(r.correct)
    outcomes = {item_id: (prompts[item_id], verdicts[item_id]) for item_id in sorted(common)}
    return accuracy, outcomes, settings.dataset


def run_calibrate_command(args: argparse.Namespace, err, argv: Sequence[str] | None = None) -> int:
    """Answer the labelled set with each member alone (or read a finished run), fit and save the calibration."""
    from ..calibration import fit_calibration
    from ..config import EnsembleConfig

    try:
        if args.from_run is None:
            work = args.work or args.out.with_name(args.out.stem + "-runs")
            eval_argv = ["eval", "--dataset", args.dataset, "--modes", "members", "--max-tokens", str(args.max_tokens), "--out", str(work), "--jobs", str(args.jobs)]
            for flag, value in (("--data-dir", args.data_dir), ("--preset", args.preset), ("--limit", args.limit)):
                if value is not None:
                    eval_argv += [flag, str(value)]
            eval_argv += [f"--model={spec}" for spec in args.model] + ["--checker", args.checker] + (["--no-progress"] if args.no_progress else [])
            from ..cli import main as cli_main

            code = cli_main(eval_argv)
            if code != 0:
                return code
        else:
            work = args.from_run
        accuracy, outcomes, dataset = member_outcomes(work, data_dir=args.data_dir)
        items = len(outcomes)
        calibration = fit_calibration(accuracy, items, dataset, args.sharpness, args.verify_only_below)
        extra: dict = {"settings": parse_overrides(args.setting)}
        if args.router:
            from ..routing import PromptRouter, RoutedItem

            extra["router"] = PromptRouter(items=[RoutedItem(prompt=p, correct=c) for p, c in outcomes.values()])
            extra["router_demotes_to"] = args.router_demotes_to
        elif args.router_demotes_to != "verify":
            raise ValueError("--router-demotes-to needs --router (without a router nothing is demoted per prompt)")
        if args.gate_threshold is not None:
            extra["gate_threshold"] = args.gate_threshold
        calibration = calibration.model_copy(update=extra)
        calibration.apply(EnsembleConfig())  # validated like any config
        calibration.save(args.out)
    except (SpecFuseError, ValueError) as error:
        err.print(f"[bold red]error:[/] {error}", markup=True)
        return 2
    shown = ", ".join(f"{n} {100 * a:.1f}% -> weight {calibration.member_weights[n]:g}" for n, a in accuracy.items())
    err.print(f"calibrated on {items} items of {dataset}: {shown}; lead {calibration.lead_member}; roles {calibration.roles or 'all both'}; wrote {args.out}", markup=False)
    return 0
