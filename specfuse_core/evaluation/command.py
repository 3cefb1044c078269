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

DATASET_HELP = "gsm8k, ifeval, or a .jsonl file with prompt and answer fields (see --checker)"


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help=DATASET_HELP)
    parser.add_argument("--data-dir", type=Path, default=None, help="folder (or file) holding the public set; default ../shared/data")
    parser.add_argument("--checker", default="exact-match", choices=["exact-match", "contains", "last-number", "regex"], help="checker for a custom .jsonl")
    parser.add_argument("--preset", default=None, help="packaged ensemble (default: tiny, unless --model is given)")
    parser.add_argument("--model", action="append", default=[], metavar="PATH_OR_ID", help="a member: .gguf file, directory or hub id (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="first N items")
    parser.add_argument("--max-tokens", type=int, default=256, help="max new tokens per answer")
    parser.add_argument("--seed", type=int, default=None, help="seed for sampled drafts (greedy by default)")
    parser.add_argument("--modes", default="all", help="comma-separated: all, members, a member name, ensemble, ensemble_exit, ensemble_hedge")
    parser.add_argument("--out", type=Path, required=True, help="output folder; an existing one is resumed")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="EnsembleConfig override for every mode, e.g. --set exclude_self_vote=true (repeatable)")
    parser.add_argument("--rescore", action="store_true", help="re-check answers already in --out with the current checkers first")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _sigterm_as_interrupt(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["score_temperature=0.5", "normalization=rank"]`` -> validated EnsembleConfig overrides."""
    from ..config import EnsembleConfig

    overrides: dict[str, Any] = {}
    for pair in pairs:
        field, sep, raw = pair.partition("=")
        if not sep or not field.strip():
            raise ValueError(f"--set expects FIELD=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare string such as rank
        overrides[field.strip()] = value
    EnsembleConfig(**overrides)  # unknown fields and bad values fail here, with pydantic's message
    return overrides


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
        check_model_specs(args.model)  # a wrong --model fails before data and models load
        items = load_dataset(args.dataset, args.data_dir, args.limit, args.checker)
        if args.dataset == "ifeval":
            from .ifeval import scorer_registry

            scorer_registry()  # fail before loading models when the scorer is missing
        members = []
        if args.preset or not args.model:
            members.extend(load_preset_members(args.preset or "tiny"))
        members.extend(model_spec_member(spec) for spec in args.model)
        ensemble = SpecFuse(members, EnsembleConfig())
        settings = EvalSettings(dataset=args.dataset, max_tokens=args.max_tokens, seed=args.seed, config=overrides)
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        outcome = run_evaluation(
            ensemble, items, args.out, settings, modes, progress=not args.no_progress,
            command="specfuse " + shlex.join(list(sys.argv[1:] if argv is None else argv)), rescore_stored=args.rescore,
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
