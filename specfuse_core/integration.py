"""What every framework adapter (LangChain, LlamaIndex, a server) needs from the core, written once.

An adapter only translates types: its messages into a conversation, :class:`SegmentStep` into its
chunks and responses. Everything else is here, so the adapters agree:

- *which ensemble*: :class:`EnsembleSource` (preset or models, member options, calibration) names the
  members and the model without loading anything; :class:`LazyEnsemble` builds it once, under a lock;
- *which settings*: adapters expose a few typed fields plus one dict of any ``EnsembleConfig`` field;
  :func:`request_config` merges them with a call's arguments and lets the core validate;
- *which call arguments*: :func:`split_call_arguments` turns keyword arguments into config overrides.
  Unknown arguments are refused (:class:`~specfuse_core.errors.UnsupportedArgumentError`), never dropped;
  output arguments (``response_format``, ``tools``, ``tool_choice``, ``parallel_tool_calls``) go to the
  core as they are (``CallArguments.output``); legacy ``functions``/``function_call`` are refused;
- *which messages*: tool results and assistant tool calls (:func:`tool_message`,
  :func:`assistant_message`); legacy function results are refused (:func:`tool_message_error`);
- *what comes out*: :func:`segment_record` (one accepted segment's provenance) and :class:`FinalReport`
  (usage, trace summary, finish reason), the same keys for every framework; with tools, a call's text
  is held back and its parsed calls come on the last step (``SegmentStep.delta``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import CALL_ALIASES, EnsembleConfig, unknown_settings_message
from .engine import AsyncGenerationStream, GenerationStream, SpecFuse
from .errors import InvalidConversationError, UnsupportedArgumentError, UnsupportedFeatureError
from .results import GenerationResult, SegmentEvent

PROVIDER = "specfuse"

#: Arguments of features the ensemble does not offer, each with what to do instead.
FEATURE_ARGUMENTS: dict[str, str] = {
    "functions": "legacy function calling (pass tools instead)",
    "function_call": "legacy function calling (pass tool_choice instead)",
}

#: Call arguments that shape the output (docs/structured_output.md), passed to the core as they are.
OUTPUT_ARGUMENTS: tuple[str, ...] = ("response_format", "tools", "tool_choice", "parallel_tool_calls")

CONFIG_FIELDS: tuple[str, ...] = tuple(EnsembleConfig.model_fields)

_BUILD_LOCK = threading.Lock()  # building an ensemble is rare (members are cached): one lock for all


def core_default(name: str) -> Any:
    """An ``EnsembleConfig`` field's default: the one place defaults live."""
    return EnsembleConfig.model_fields[name].get_default(call_default_factory=True)


def field_description(name: str) -> str:
    return EnsembleConfig.model_fields[name].description or f"EnsembleConfig.{name}"


# ---------------------------------------------------------------------- which ensemble
def member_name_for(spec: str) -> str:
    """The member name a model string gets: a GGUF file's stem, else the directory or hub id's last part."""
    path = Path(spec)
    return path.stem if path.suffix == ".gguf" else (path.name or spec)


@dataclass(frozen=True)
class EnsembleSource:
    """Where an adapter's members come from: a preset or model strings, loading options, calibration."""

    preset: str | None = None
    models: tuple[str, ...] | None = None
    member_kwargs: Mapping[str, Any] = field(default_factory=dict)
    calibration: str | None = None

    @property
    def key(self) -> tuple:
        """Equal for sources that build the same ensemble."""
        return (self.preset, self.models, repr(sorted(self.member_kwargs.items())), self.calibration)

    def check_shape(self) -> None:
        """Cheap structural checks (``ValueError``), for a settings validator."""
        if self.models is not None and not self.models:
            raise ValueError("models must name at least one model (a .gguf file, a model directory or a hub id)")

    def check_exists(self) -> None:
        """The preset exists and every model string resolves (no loading, no network); raises
        :class:`~specfuse_core.errors.PresetNotFoundError` or :class:`~specfuse_core.errors.ModelNotFoundError`."""
        from .loading import check_model_specs
        from .presets import preset_members

        if self.models:
            check_model_specs(list(self.models))
        elif self.preset:
            preset_members(self.preset)

    def member_names(self) -> list[str]:
        """Member names, known without loading any weights."""
        from .presets import preset_members

        if self.models:
            return [member_name_for(spec) for spec in self.models]
        return [m.name for m in preset_members(self.preset)] if self.preset else []

    def build(self, config: EnsembleConfig | None = None) -> SpecFuse:
        """Load (or reuse, through the process-wide member cache) the members. Settings are passed per
        request, so adapters with other settings share the ensemble; the calibration (by default the
        preset's own) fills the trust settings a request leaves unset."""
        from .loading import load_preset_members, model_spec_member
        from .presets import preset_calibration

        if self.models:
            members = [model_spec_member(spec, **self.member_kwargs) for spec in self.models]
            calibration: Any = self.calibration
        elif self.preset:
            members = load_preset_members(self.preset, **self.member_kwargs)
            calibration = self.calibration or preset_calibration(self.preset)
        else:
            raise ValueError("an ensemble needs a preset, a list of models, or an existing SpecFuse")
        return SpecFuse(members, config or EnsembleConfig(), calibration=calibration)


def model_name(preset: str | None, members: Sequence[str]) -> str:
    """The model name every adapter reports: ``specfuse:<preset>``, else ``specfuse:<member>+<member>``."""
    return f"{PROVIDER}:{preset}" if preset else f"{PROVIDER}:" + "+".join(members)


class LazyEnsemble:
    """An adapter's ensemble: built on first use from its source (again if the source changes), or
    pinned to one given up front."""

    def __init__(self, pinned: SpecFuse | None = None) -> None:
        self.pinned = pinned
        self._built: SpecFuse | None = None
        self._key: tuple | None = None

    def current(self, source: EnsembleSource) -> SpecFuse | None:
        """The ensemble for ``source`` if it is loaded; never loads."""
        if self.pinned is not None:
            return self.pinned
        return self._built if self._key == source.key else None

    def get(self, source: EnsembleSource, config: EnsembleConfig | None = None) -> SpecFuse:
        ensemble = self.current(source)
        if ensemble is not None:
            return ensemble
        with _BUILD_LOCK:
            if self._key != source.key:
                self._built, self._key = source.build(config), source.key
            return self._built  # type: ignore[return-value]

    async def aget(self, source: EnsembleSource, config: EnsembleConfig | None = None) -> SpecFuse:
        """:meth:`get` with loading kept off the event loop (it takes seconds)."""
        ensemble = self.current(source)
        return ensemble if ensemble is not None else await asyncio.to_thread(self.get, source, config)

    def member_names(self, source: EnsembleSource) -> list[str]:
        ensemble = self.current(source)
        return list(ensemble.member_names) if ensemble is not None else source.member_names()

    def model_name(self, source: EnsembleSource) -> str:
        preset = source.preset if self.pinned is None and not source.models else None
        return model_name(preset, self.member_names(source))


# ---------------------------------------------------------------------- which settings
def route_config_keywords(values: dict[str, Any], own_fields: Iterable[str], into: str) -> dict[str, Any]:
    """Constructor keywords that name ``EnsembleConfig`` fields the adapter has no typed field for go
    into its config dict ``into``, so every core setting is accepted by name and none is copied."""
    own = set(own_fields)
    extra = {k: values.pop(k) for k in list(values) if k not in own and k in EnsembleConfig.model_fields}
    if extra:
        values[into] = {**(values.get(into) or {}), **extra}
    return values


def check_config_dict(settings: Mapping[str, Any], where: str) -> None:
    """An adapter's dict of extra EnsembleConfig fields (``ensemble_kwargs``, ``additional_kwargs``)
    takes the core's field names only; a typo is named with the closest field."""
    unknown = sorted(set(settings) - set(CONFIG_FIELDS))
    if unknown:
        raise ValueError(f"{where}: {unknown_settings_message(unknown, aliases=False)}")


def request_config(*layers: Mapping[str, Any], stop: Sequence[str] = ()) -> EnsembleConfig:
    """The validated configuration of a request: each layer's non-None values over the core defaults
    (later layers win; names may be call aliases), with ``stop`` strings added to the configured ones.
    The core validates; adapters copy no constraint."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({CALL_ALIASES.get(k, k): v for k, v in layer.items() if v is not None})
    merged["stop"] = list(dict.fromkeys([*_as_list(merged.get("stop")), *stop]))
    return EnsembleConfig.model_validate(merged)


@dataclass(frozen=True)
class CallArguments:
    """A call's keyword arguments, split: ``overrides`` are config fields (by their core names),
    ``stop`` adds to the configured stop strings."""

    overrides: dict[str, Any]
    stop: list[str]
    output: dict[str, Any] = field(default_factory=dict)  # response_format / tools / tool_choice for the core


def split_call_arguments(
    kwargs: Mapping[str, Any], *, model: str, framework: Iterable[str] = (), adapter: str = "specfuse"
) -> CallArguments:
    """Split a call's keyword arguments (see the module docstring for the policy).

    ``framework``: arguments the framework itself passes that mean nothing to the ensemble (LangChain's
    ``stream``); ``None`` values keep the configured setting; ``model`` may only name this model."""
    plumbing = set(framework)
    asked = kwargs.get("model")
    if asked is not None and asked != model:
        raise UnsupportedArgumentError(
            f"{adapter} cannot switch models per call (asked for {asked!r}, this is {model!r}); build another instance instead"
        )
    features = sorted(k for k in kwargs if k in FEATURE_ARGUMENTS and kwargs[k] is not None)
    if features:
        offered = sorted({FEATURE_ARGUMENTS[k] for k in features})
        raise UnsupportedArgumentError(
            f"unsupported argument(s) for {adapter}: {', '.join(features)}. The ensemble has no {' or '.join(offered)}; "
            "per-call settings are EnsembleConfig fields (max_tokens, temperature, segment_tokens, ...)"
        )
    known = set(CONFIG_FIELDS) | set(CALL_ALIASES) | plumbing | set(FEATURE_ARGUMENTS) | set(OUTPUT_ARGUMENTS) | {"model"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise UnsupportedArgumentError(
            f"unsupported argument(s) for {adapter}: {', '.join(unknown)}. Per-call settings are EnsembleConfig "
            "fields (max_tokens, temperature, segment_tokens, ...), plus response_format, tools and tool_choice"
        )
    overrides: dict[str, Any] = {}
    for key, value in kwargs.items():
        name = CALL_ALIASES.get(key, key)
        if value is None or key in plumbing or key == "model" or key in FEATURE_ARGUMENTS or key in OUTPUT_ARGUMENTS or name == "stop":
            continue
        if key in CALL_ALIASES and name in kwargs and kwargs[name] is not None:
            continue  # the core name wins over its alias
        overrides[name] = value
    output = {k: kwargs[k] for k in OUTPUT_ARGUMENTS if kwargs.get(k) is not None}
    return CallArguments(overrides, _as_list(kwargs.get("stop")), output)


def _as_list(stop: str | Sequence[str] | None) -> list[str]:
    """Stop strings as a list (one string, or None for none); the core checks them."""
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def feature_not_offered(adapter: str, feature: str, instead: str) -> UnsupportedFeatureError:
    """The error for a framework feature the ensemble lacks (raised up front, before any model work)."""
    return UnsupportedFeatureError(
        f"{adapter} has no {feature} (yet): the ensemble has no constrained decoding, and its small members "
        f"cannot reliably follow a schema. {instead}"
    )


# ---------------------------------------------------------------------- which messages
TOOL_ROLES = frozenset({"tool", "function"})


def tool_message_error(adapter: str, index: int, kind: str) -> InvalidConversationError:
    """Why a legacy function message is refused, and what to send instead (tool results are taken)."""
    return InvalidConversationError(
        f"message {index} is a {kind} message, which {adapter} does not take: legacy function calling is "
        "not offered. Answer tool calls with tool messages (role 'tool', with the call's id)"
    )


def tool_message(content: str, tool_call_id: str | None, name: str | None = None) -> dict[str, Any]:
    """A tool result in the core's conversation."""
    return {"role": "tool", "content": content, "tool_call_id": tool_call_id or "", "name": name or ""}


def assistant_message(content: str, tool_calls: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """An assistant turn, with the tool calls it made (``{"id", "name", "arguments": dict}``)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [{"id": c.get("id") or "", "name": c["name"], "arguments": dict(c.get("arguments") or {})} for c in tool_calls]
    return message


# ---------------------------------------------------------------------- what comes out
def segment_record(event: SegmentEvent) -> dict[str, Any]:
    """Provenance of one accepted segment. No "index" key: LangChain merges list items that carry one."""
    return {
        "round": event.round,
        "member": event.member,
        "proposers": list(event.proposers),
        "scores": dict(event.scores),
        "active_members": list(event.active_members),
        "text": event.text,
        "segment": event.segment,
        "finish_reason": event.finish_reason,
        "faults": [fault.model_dump() for fault in event.faults],
    }


@dataclass(frozen=True)
class FinalReport:
    """What a finished request reports, in the shapes every framework reads."""

    result: GenerationResult

    @property
    def finish_reason(self) -> str:
        return self.result.finish_reason

    def token_counts(self) -> dict[str, int]:
        usage = self.result.usage
        return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens}

    def member_usage(self) -> dict[str, dict[str, int]]:
        return {name: usage.model_dump() for name, usage in self.result.usage.members.items()}

    def summary(self) -> dict[str, Any]:
        """Finish reason, token counts, rounds and wins: small enough for every response."""
        trace = self.result.trace
        return {"finish_reason": self.finish_reason, **self.token_counts(), "rounds": len(trace.rounds), "wins": dict(trace.wins)}

    def details(self) -> dict[str, Any]:
        """Finish reason, full usage (each member's work) and the trace summary."""
        return {"finish_reason": self.finish_reason, "usage": self.result.usage.model_dump(), "trace": self.result.trace.summary()}


@dataclass(frozen=True)
class SegmentStep:
    """One accepted segment, the text so far, and (on the last one) the finished request's report."""

    event: SegmentEvent
    text: str
    final: FinalReport | None = None
    delta: str = ""  # what the caller may show now (tool-call text is held back; see _StepMaker)

    @property
    def record(self) -> dict[str, Any]:
        return segment_record(self.event)


def open_stream(ensemble: SpecFuse, conversation: Any, config: EnsembleConfig, output: Mapping[str, Any] | None = None) -> GenerationStream:
    """Start a request now (bad input raises here, at call time). ``output``: ``response_format`` /
    ``tools`` / ``tool_choice`` (``CallArguments.output``)."""
    return ensemble.stream(conversation, config, **dict(output or {}))


async def aopen_stream(lazy: LazyEnsemble, source: EnsembleSource, conversation: Any, config: EnsembleConfig,
                       output: Mapping[str, Any] | None = None) -> AsyncGenerationStream:
    """Start a request with loading and prompt tokenisation off the event loop."""
    ensemble = await lazy.aget(source)
    return await asyncio.to_thread(lambda: ensemble.astream(conversation, config, **dict(output or {})))


class _StepMaker:
    """Turns a stream's events into steps (text shown so far; the final report on the finishing one).

    With tools, text that is or may become a tool call (the answer starts with ``<tool_call>``, or
    could still) is held back: a call is shown once, parsed, as the result's ``tool_calls`` on the last
    step, never as half-written text; a text answer is released as soon as it cannot be a call."""

    def __init__(self, stream: GenerationStream | AsyncGenerationStream) -> None:
        self.stream, self.text, self.raw = stream, "", ""
        output = stream.request.output
        self.tools = output is not None and output.has_tools

    def __call__(self, event: SegmentEvent) -> SegmentStep:
        self.raw += event.text
        final = FinalReport(self.stream.result()) if event.finish_reason else None
        if not self.tools:
            delta = event.text
        elif final is not None:
            delta = "" if final.result.tool_calls else self.raw[len(self.text):]
        else:
            delta = "" if _may_be_call(self.raw) else self.raw[len(self.text):]
        self.text += delta
        return SegmentStep(event, self.text, final, delta)


def _may_be_call(text: str) -> bool:
    from .constrained.tools import CALL_OPEN

    head = text.lstrip()
    return head.startswith(CALL_OPEN) or CALL_OPEN.startswith(head)


def segment_steps(stream: GenerationStream) -> Iterator[SegmentStep]:
    """The request's segments as steps; the request is closed when the iteration ends or is abandoned."""
    make = _StepMaker(stream)
    try:
        for event in stream:
            yield (step := make(event))
            if step.final is not None:
                return
    finally:
        stream.close()


async def asegment_steps(stream: AsyncGenerationStream) -> AsyncIterator[SegmentStep]:
    """:func:`segment_steps` for async streams (one worker-thread hop per segment, none after the last)."""
    make = _StepMaker(stream)
    try:
        async for event in stream:
            yield (step := make(event))
            if step.final is not None:
                return
    finally:
        await stream.aclose()


def final_report(steps: Sequence[SegmentStep]) -> FinalReport:
    """The report of a request run to its end (its last step carries it)."""
    final = steps[-1].final if steps else None
    if final is None:  # a request always ends with a finishing segment; a closed one has none
        raise RuntimeError("the request ended without a final segment (was it closed?)")
    return final
