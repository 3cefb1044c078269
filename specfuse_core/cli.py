"""``specfuse`` command line: ``specfuse chat "question"`` streams the ensemble's answer segment by segment;
``specfuse eval`` scores members and ensemble modes on a dataset (see docs/evaluation.md);
``specfuse serve`` serves the ensemble over an OpenAI-compatible HTTP API (see docs/serving.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .config import EnsembleConfig
from .engine import SpecFuse
from .errors import SpecFuseError
from .integration import core_default
from .evaluation.command import add_calibrate_arguments, add_eval_arguments, run_calibrate_command, run_eval_command
from .results import GenerationResult
from .serve.command import add_serve_arguments, run_serve_command

COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "red"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specfuse", description="Segment-level ensembling of local LLMs.")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="answer one question with the ensemble, streaming segments")
    chat.add_argument("question", help="the user message")
    chat.add_argument("--preset", default=None, help="packaged ensemble (default: tiny, unless --model or --remote is given)")
    chat.add_argument("--model", action="append", default=[], metavar="PATH_OR_ID", help="a member: .gguf file, directory or hub id (repeatable)")
    chat.add_argument(
        "--remote", action="append", default=[], metavar="URL,MODEL[,TOKENIZER]",
        help="a member served over /v1/completions (vLLM, llama-cpp-python); TOKENIZER: its local tokenizer dir, "
        "tokenizer.json or .gguf (default: MODEL). Repeatable; see docs/scaling.md",
    )
    chat.add_argument("--remote-api-key-env", default=None, metavar="VAR", help="environment variable holding the remote servers' API key")
    chat.add_argument("--system", default=None, help="a system message")
    # defaults are EnsembleConfig's own (one place): a flag left out leaves the field at its default
    chat.add_argument("--max-tokens", type=int, default=core_default("max_new_tokens"), help="max new tokens, counted in the counting member's tokens, the first unless counting_member is set (default: %(default)s)")
    chat.add_argument("--temperature", type=float, default=core_default("temperature"))
    chat.add_argument("--top-p", type=float, default=core_default("top_p"))
    chat.add_argument("--seed", type=int, default=core_default("seed"))
    chat.add_argument("--segment-tokens", type=int, default=core_default("segment_tokens"))
    chat.add_argument("--weighting", choices=["uniform", "hedge"], default=core_default("weighting"))
    chat.add_argument("--model-exit", action="store_true", help="drop members that keep losing")
    chat.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    chat.add_argument("--trace", action="store_true", help="print a per-round table after the answer")
    evaluate = commands.add_parser("eval", help="score each member alone and the ensemble on a dataset (accuracy and cost)")
    add_eval_arguments(evaluate)
    calibrate = commands.add_parser("calibrate", help="fit per-member weights, roles and the gating lead from each member's accuracy on a labelled set")
    add_calibrate_arguments(calibrate)
    compare = commands.add_parser("compare", help="one report over several `specfuse eval` folders of the same dataset (re-checked, nothing generated)")
    compare.add_argument("runs", nargs="+", type=Path, help="eval folders")
    compare.add_argument("--out", type=Path, required=True, help="folder for summary.json, report.md and the plot")
    compare.add_argument("--rename", action="append", default=[], metavar="[RUN:]MODE=NEW", help="rename a mode (repeatable), e.g. dev-base:ensemble=uncalibrated")
    compare.add_argument("--data-dir", type=Path, default=None, help="folder of the public set, for gsm8k/ifeval runs")
    compare.add_argument("--common-only", action="store_true", help="only the items every mode finished (runs stopped at different points)")
    compare.add_argument("--exclude", action="append", default=[], metavar="[RUN:]MODE", help="leave a mode out (repeatable), e.g. ifeval-final:ensemble")
    serve = commands.add_parser("serve", help="serve the ensemble over an OpenAI-compatible HTTP API (docs/serving.md)")
    add_serve_arguments(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    if args.command == "eval":
        return run_eval_command(args, err, argv)
    if args.command == "calibrate":
        return run_calibrate_command(args, err, argv)
    if args.command == "serve":
        return run_serve_command(args, err)
    if args.command == "compare":
        from .evaluation.compare import compare_runs

        try:
            command = "specfuse " + " ".join(sys.argv[1:] if argv is None else argv)
            compare_runs(
                args.runs, args.out, args.rename, args.data_dir, command=command, common_only=args.common_only, exclude=args.exclude
            )
        except (SpecFuseError, ValueError) as error:
            err.print(f"error: {error}", markup=False)
            return 2
        err.print(f"report in {args.out}", markup=False)
        return 0
    try:
        config = EnsembleConfig(
            max_new_tokens=args.max_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            segment_tokens=args.segment_tokens,
            weighting=args.weighting,
            model_exit=args.model_exit,
            stop=args.stop,
        )
        ensemble = _build_ensemble(args, config)
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": args.question}
        ]
        colour = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(ensemble.member_names)}
        stream = ensemble.stream(messages)
        for event in stream:
            out.print(event.text, style=colour[event.member] if out.is_terminal else None, end="", markup=False, soft_wrap=True)
        out.print()
        result = stream.result()
    except (SpecFuseError, ValueError) as error:
        print_error(err, error, CHAT_FLAGS)
        return 2
    if out.is_terminal:
        legend = "  ".join(f"[{colour[n]}]{n}[/]" for n in ensemble.member_names)
        err.print(f"segments coloured by winning member: {legend}")
    if args.trace:
        err.print(trace_table(result))
    err.print(
        f"finish_reason={result.finish_reason} rounds={len(result.trace.rounds)} "
        f"completion_tokens={result.usage.completion_tokens} forward_calls={result.usage.forward_calls}",
        markup=False,
    )
    return 0


# EnsembleConfig field -> the `specfuse chat` flag that sets it.
CHAT_FLAGS = {
    "max_new_tokens": "--max-tokens",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "seed": "--seed",
    "segment_tokens": "--segment-tokens",
    "weighting": "--weighting",
    "model_exit": "--model-exit",
    "stop": "--stop",
}


def validation_message(error: ValidationError, flags: Mapping[str, str]) -> str:
    """A pydantic error in the user's terms: each problem under the flag that set the field (no
    internal field names, no pydantic URLs)."""
    problems = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        where = flags.get(field, f"--set {field}" if field else "settings")
        message = item["msg"].removeprefix("Value error, ")
        got = f" (got {item['input']!r})" if "input" in item and item["type"] != "extra_forbidden" else ""
        problems.append(f"{where}: {message}{got}")
    return "; ".join(problems)


def print_error(console: Console, error: BaseException | str, flags: Mapping[str, str] | None = None) -> None:
    """A user's mistake: one line on stderr, no traceback. The message is printed as text (``[tiny]``
    in it is not console markup) and not wrapped; validation errors name the flags."""
    if isinstance(error, ValidationError):
        error = validation_message(error, flags or {})
    console.print(Text.assemble(("error:", "bold red"), " ", str(error)), soft_wrap=True)


def _build_ensemble(args: argparse.Namespace, config: EnsembleConfig) -> SpecFuse:
    from .loading import check_model_specs, load_preset_members, model_spec_member

    check_model_specs(args.model)  # a wrong --model fails before the preset loads
    members: list = []
    if args.preset or not (args.model or args.remote):
        members.extend(load_preset_members(args.preset or "tiny"))
    members.extend(model_spec_member(spec) for spec in args.model)
    if args.remote:
        from .remote import remote_member

        members.extend(remote_member(spec, api_key_env=args.remote_api_key_env) for spec in args.remote)
    return SpecFuse(members, config)


def trace_table(result: GenerationResult) -> Table:
    table = Table(title="rounds", show_lines=False)
    for column in ("round", "winner", "segment", "scores (member: combined)", "active", "exited"):
        table.add_column(column)
    for r in result.trace.rounds:
        scores = ", ".join(f"{'+'.join(c.proposers)}: {c.combined:.2f}" for c in r.candidates)
        table.add_row(
            str(r.round),
            r.winner_member,
            repr(r.candidates[r.winner].text),
            scores,
            ", ".join(r.active_members),
            ", ".join(r.exited),
        )
    return table


if __name__ == "__main__":
    sys.exit(main())
