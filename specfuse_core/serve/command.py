"""``specfuse serve``: its flags, and building the ensemble, the app and the server from them.
Cheap checks (the API key variable, the limits, the port) run before any model loads."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console

from ..config import EnsembleConfig
from ..engine import SpecFuse
from ..errors import SpecFuseError

if TYPE_CHECKING:
    from .limits import ServeLimits

# EnsembleConfig field -> the `specfuse serve` flag that sets it (for one-line validation errors)
SERVE_FLAGS = {
    "segment_tokens": "--segment-tokens",
    "weighting": "--weighting",
    "model_exit": "--model-exit",
    "timeout_s": "--request-timeout",
}
# ServeLimits field -> its flag
LIMIT_FLAGS = {
    "max_body_bytes": "--max-body-bytes",
    "max_messages": "--max-messages",
    "max_prompt_chars": "--max-prompt-chars",
    "max_tokens_cap": "--max-tokens-cap",
    "default_max_tokens": "--default-max-tokens",
    "max_concurrent_requests": "--max-concurrent",
}


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    members = parser.add_argument_group("ensemble")
    members.add_argument("--preset", default=None, help="packaged ensemble (default: tiny, unless --model or --remote is given)")
    members.add_argument("--model", action="append", default=[], metavar="PATH_OR_ID", help="a member: .gguf file, directory or hub id (repeatable)")
    members.add_argument("--remote", action="append", default=[], metavar="URL,MODEL[,TOKENIZER]", help="a member served over /v1/completions (repeatable; docs/scaling.md)")
    members.add_argument("--remote-api-key-env", default=None, metavar="VAR", help="environment variable holding the remote members' API key")
    members.add_argument("--calibration", type=Path, default=None, metavar="FILE", help="trust settings from `specfuse calibrate` (default: the preset's own, if it ships one)")
    members.add_argument("--segment-tokens", type=int, default=None, help="tokens each member drafts per round (server default for every request)")
    members.add_argument("--weighting", choices=["uniform", "hedge"], default=None)
    members.add_argument("--model-exit", action="store_true", default=None, help="drop members that keep losing")
    http = parser.add_argument_group("server")
    http.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    http.add_argument("--port", type=int, default=8000, help="port (0: any free port; the chosen one is printed)")
    http.add_argument("--served-model-name", default=None, metavar="NAME", help="the model id clients send (default: specfuse-PRESET, or specfuse)")
    http.add_argument("--api-key-env", default=None, metavar="VAR", help="require 'Authorization: Bearer <key>', the key read from this environment variable")
    http.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="SECONDS", help="on SIGTERM/Ctrl-C, let in-flight requests finish this long, then cancel them")
    http.add_argument("--request-timeout", type=float, default=None, metavar="SECONDS", help="wall-clock limit of one generation (ends it with the text so far)")
    limits = parser.add_argument_group("limits (over a limit: 413 for the body, 400 otherwise, 429 when busy)")
    limits.add_argument("--max-body-bytes", type=int, default=1 << 20)
    limits.add_argument("--max-messages", type=int, default=256)
    limits.add_argument("--max-prompt-chars", type=int, default=100_000, help="all messages' text together")
    limits.add_argument("--max-tokens-cap", type=int, default=1024, help="the most max_tokens a request may ask for")
    limits.add_argument("--default-max-tokens", type=int, default=256, help="max_tokens of a request that does not say")
    limits.add_argument("--max-concurrent", type=int, default=64, help="requests in flight at once")
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info")


def run_serve_command(args: argparse.Namespace, err: Console) -> int:
    from ..cli import print_error

    try:
        from .app import ServeSettings, create_app
        from .limits import ServeLimits
        from .memory import limit_malloc_arenas
        from .server import BindError, base_url, bind_socket, make_server
    except ImportError as error:
        print_error(err, f"specfuse serve needs the serve extra ({error.name} is missing): pip install 'specfuse[serve]'")
        return 2

    try:
        api_key = _api_key(args.api_key_env)
        limits = _limits(args, ServeLimits)
        if args.shutdown_timeout < 0:
            raise ValueError(f"--shutdown-timeout must be >= 0, got {args.shutdown_timeout}")
        config = EnsembleConfig().with_overrides(
            segment_tokens=args.segment_tokens, weighting=args.weighting, model_exit=args.model_exit, timeout_s=args.request_timeout
        )
        sock = bind_socket(args.host, args.port)
    except (ValueError, ValidationError, BindError) as error:
        print_error(err, error, SERVE_FLAGS)
        return 2
    limit_malloc_arenas()  # before loading: every thread of this process shares the few arenas (create_app asks again)
    try:
        ensemble = _build_ensemble(args, config)
    except (SpecFuseError, ValueError) as error:
        sock.close()
        print_error(err, error, SERVE_FLAGS)
        return 2
    name = args.served_model_name or (f"specfuse-{args.preset or 'tiny'}" if not (args.model or args.remote) else "specfuse")
    app = create_app(ensemble, ServeSettings(model_name=name, limits=limits, api_key=api_key))
    auth = f"API key from ${args.api_key_env}" if api_key else "no API key"
    err.print(f"serving {name!r} ({', '.join(ensemble.member_names)}) on {base_url(sock)} with {auth}", markup=False, soft_wrap=True)
    make_server(app, args.shutdown_timeout, log_level=args.log_level).run(sockets=[sock])
    return 0


def _limits(args: argparse.Namespace, limits_class: type) -> "ServeLimits":
    """The limit flags, with a mistake reported under the flag's name."""
    values = {field: getattr(args, flag.removeprefix("--").replace("-", "_")) for field, flag in LIMIT_FLAGS.items()}
    try:
        return limits_class(**values)
    except ValueError as error:
        message = str(error)
        for field, flag in LIMIT_FLAGS.items():
            message = message.replace(field, flag)
        raise ValueError(message) from None


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "").strip()
    if not key:
        raise ValueError(f"--api-key-env {variable}: that environment variable is not set or empty")
    return key


def _build_ensemble(args: argparse.Namespace, config: EnsembleConfig) -> SpecFuse:
    """Like ``specfuse chat``'s members; a preset brings its shipped calibration (as ``from_preset`` does)."""
    from ..loading import check_model_specs, load_preset_members, model_spec_member
    from ..presets import preset_calibration

    check_model_specs(args.model)  # a wrong --model fails before the preset loads
    members: list = []
    calibration = args.calibration
    if args.preset or not (args.model or args.remote):
        preset = args.preset or "tiny"
        calibration = calibration or preset_calibration(preset)
        members.extend(load_preset_members(preset))
    members.extend(model_spec_member(spec) for spec in args.model)
    if args.remote:
        from ..remote import remote_member

        members.extend(remote_member(spec, api_key_env=args.remote_api_key_env) for spec in args.remote)
    return SpecFuse(members, config, calibration=calibration)
