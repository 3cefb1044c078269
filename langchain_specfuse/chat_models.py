"""LangChain chat model for a SpecFuse ensemble of local LLMs.

A thin adapter: every decoding decision lives in :mod:`specfuse_core`. This module converts
LangChain messages to a conversation, maps the fields below to ``EnsembleConfig`` overrides and turns
each accepted segment (:class:`specfuse_core.SegmentEvent`) into one ``AIMessageChunk``.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig, ensure_config
from pydantic import Field, PrivateAttr, model_validator
from typing_extensions import Self

from specfuse_core import EnsembleConfig, GenerationResult, SegmentEvent, SpecFuse
from specfuse_core.errors import PresetNotFoundError, UnsupportedFeatureError
from specfuse_core.loading import check_model_specs, member_name_for
from specfuse_core.presets import preset_members

_STREAM_CONFIG = "_specfuse_stream_config"  # keyword that carries stream()'s config to _stream

SEGMENT_EVENT = "specfuse_segment"
"""Name of the custom callback event dispatched once per accepted segment."""

PROVIDER = "specfuse"

# ChatSpecFuse field -> EnsembleConfig field (only where the names differ).
_RENAMED = {"max_tokens": "max_new_tokens", "timeout": "timeout_s"}
_SETTING_FIELDS = (
    "segment_tokens",
    "max_tokens",
    "max_rounds",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "weighting",
    "repetition_penalty",
    "model_exit",
    "exit_warmup_rounds",
    "exit_threshold",
    "min_members",
    "context_overflow",
    "timeout",
)
_ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "ai": "assistant"}
_BUILD_LOCK = threading.Lock()  # building an ensemble is rare; one lock for all instances is enough


class ChatSpecFuse(BaseChatModel):
    """Chat model backed by a SpecFuse segment-level ensemble of local causal LMs.

    Each round every member drafts a segment (``segment_tokens`` of its own tokens), every member scores
    every candidate and the best one is appended. Streaming yields one ``AIMessageChunk`` per accepted
    segment, so ``on_llm_new_token`` fires once per segment.

    Construction is cheap: the ensemble is built on first use, and its members come from a process-wide
    cache, so many ``ChatSpecFuse`` objects over the same models load the weights once.

    Example:
        ```python
        from langchain_specfuse import ChatSpecFuse

        llm = ChatSpecFuse(preset="tiny", max_tokens=32)
        llm.invoke("Name a primary colour.").content
        for chunk in llm.stream("Say hello."):
            print(chunk.content, chunk.response_metadata["segments"][0]["member"])
        ```

    Provenance: every chunk carries ``response_metadata["segments"]``, a list with one record per
    segment (``round``, ``member``, ``proposers``, ``scores``, ``active_members``, ``text``); lists
    concatenate when chunks are added, so the merged message holds every record in order. The last chunk
    also carries ``usage_metadata``, ``model_name``, ``finish_reason``, ``trace`` (rounds, wins per member,
    exited and skipped members, final weights) and ``member_usage``.
    """

    # ------------------------------------------------------------------ which models
    preset: str | None = None
    """Packaged ensemble to load (``"tiny"`` when neither ``preset`` nor ``models`` is given)."""
    models: list[str] | None = None
    """Explicit members instead of a preset: ``.gguf`` paths, transformers directories or hub ids."""
    member_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Passed to member loading, e.g. ``{"device": "cuda", "dtype": "bfloat16"}``."""
    calibration: str | None = None
    """A ``specfuse calibrate`` file (member weights, roles, gating lead); default: the preset's own, if any."""

    # ------------------------------------------------------------------ ensemble settings (None: core default)
    segment_tokens: int | None = None
    """Tokens each member drafts per round."""
    max_tokens: int | None = None
    """Output length cap (``max_new_tokens``), counted in the first member's tokens."""
    max_rounds: int | None = None
    temperature: float | None = None
    """0 (the default) drafts greedily."""
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    """Stop strings; call-time ``stop`` adds to these. Output is cut before the first match."""
    weighting: Literal["uniform", "hedge"] | None = None
    repetition_penalty: float | None = None
    model_exit: bool | None = None
    """Let members whose candidates keep losing leave the ensemble mid-request."""
    exit_warmup_rounds: int | None = None
    exit_threshold: float | None = None
    min_members: int | None = None
    context_overflow: Literal["error", "skip_member"] | None = None
    timeout: float | None = None
    """Wall-clock limit of one request in seconds (``EnsembleConfig.timeout_s``), checked between rounds:
    on expiry the answer ends with the text so far and ``finish_reason="timeout"``."""
    ensemble_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Any other ``EnsembleConfig`` field, e.g. ``{"exclude_self_vote": True}``."""

    streaming: bool = False
    """Route ``invoke`` through streaming (segments are reported through callbacks either way)."""

    _ensemble: SpecFuse | None = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.models is not None:  # a wrong path or uncached hub id fails here, not at the first call
            check_model_specs(self.models)

    # ------------------------------------------------------------------ validation (cheap: no model loading)
    @model_validator(mode="before")
    @classmethod
    def _collect_ensemble_kwargs(cls, values: Any) -> Any:
        """Accept any EnsembleConfig field as a keyword (into ``ensemble_kwargs``); warn about the rest."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        extra = {k: values.pop(k) for k in list(values) if k not in cls.model_fields and k in EnsembleConfig.model_fields}
        if extra:
            values["ensemble_kwargs"] = {**(values.get("ensemble_kwargs") or {}), **extra}
        ignored = sorted(k for k in values if k not in cls.model_fields)
        if ignored:
            warnings.warn(
                f"ChatSpecFuse ignores {', '.join(ignored)}: it runs local models (no API key or retries); "
                "settings are the EnsembleConfig fields",
                UserWarning,
                stacklevel=4,  # the caller of ChatSpecFuse(...)
            )
        return values

    @model_validator(mode="after")
    def _check_settings(self) -> Self:
        if self.models is not None and self.preset is not None:
            raise ValueError("give either preset or models, not both")
        if self.models is not None and not self.models:
            raise ValueError("models must name at least one model")
        if self.models is None and self.preset is None:
            self.preset = "tiny"
        if self.preset is not None:
            try:
                preset_members(self.preset)
            except PresetNotFoundError as error:
                raise ValueError(str(error)) from None
        unknown = set(self.ensemble_kwargs) - set(EnsembleConfig.model_fields)
        if unknown:
            raise ValueError(f"ensemble_kwargs has unknown EnsembleConfig fields: {', '.join(sorted(unknown))}")
        self._config(self._stop_list(None))  # fail now, not on the first call, on bad values
        return self

    # ------------------------------------------------------------------ identity
    @property
    def _llm_type(self) -> str:
        return "specfuse-chat"

    @property
    def member_names(self) -> list[str]:
        """Member names, known without loading any weights."""
        if self.models is not None:
            return [member_name_for(spec) for spec in self.models]
        return [member.name for member in preset_members(self.preset or "tiny")]

    @property
    def model_name(self) -> str:
        """``specfuse:<preset>``, or ``specfuse:<member>+<member>...`` for explicit models."""
        return f"{PROVIDER}:{self.preset}" if self.models is None else f"{PROVIDER}:" + "+".join(self.member_names)

    def _settings(self) -> dict[str, Any]:
        """The settings this instance sets (None fields fall back to the core defaults), by field name."""
        settings = {name: getattr(self, name) for name in _SETTING_FIELDS if getattr(self, name) is not None}
        if self.stop:
            settings["stop"] = list(self.stop)
        return {**settings, **self.ensemble_kwargs}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"model_name": self.model_name, "members": self.member_names}
        if self.preset is not None:
            params["preset"] = self.preset
        else:
            params["models"] = list(self.models or [])
        if self.member_kwargs:
            params["member_kwargs"] = {k: str(v) for k, v in self.member_kwargs.items()}
        params.update(self._settings())
        return params

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=model if isinstance(model, str) else self.model_name,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        params["ls_temperature"] = float(
            temperature if temperature is not None else EnsembleConfig.model_fields["temperature"].default
        )
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        params["ls_max_tokens"] = int(
            max_tokens if max_tokens is not None else EnsembleConfig.model_fields["max_new_tokens"].default
        )
        stops = self._stop_list(stop)
        if stops:
            params["ls_stop"] = stops
        params["ls_ensemble_members"] = self.member_names  # type: ignore[typeddict-unknown-key]
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        return ModelProfile(
            open_weights=True,
            text_inputs=True,
            image_inputs=False,
            audio_inputs=False,
            video_inputs=False,
            pdf_inputs=False,
            text_outputs=True,
            tool_calling=False,
            structured_output=False,
        )

    # ------------------------------------------------------------------ not offered (yet)
    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        """Not offered: raises :class:`~specfuse_core.errors.UnsupportedFeatureError` saying why."""
        raise UnsupportedFeatureError(
            "ChatSpecFuse has no tool calling (yet): its small members cannot reliably follow a tool schema "
            "and the ensemble has no constrained decoding (llm.profile['tool_calling'] is False). For agents, "
            "use a tool-calling chat model; otherwise describe the tools in the prompt and parse the reply "
            "yourself, expecting failures"
        )

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, **kwargs: Any) -> Any:
        """Not offered: raises :class:`~specfuse_core.errors.UnsupportedFeatureError` saying why."""
        raise UnsupportedFeatureError(
            "ChatSpecFuse has no structured output or JSON mode (yet): the ensemble has no constrained "
            "decoding (llm.profile['structured_output'] is False). Ask for JSON in the prompt and parse the "
            "reply with JsonOutputParser or PydanticOutputParser, expecting failures, or use a model that "
            "supports structured output"
        )

    # ------------------------------------------------------------------ the ensemble
    @property
    def ensemble(self) -> SpecFuse:
        """The :class:`SpecFuse` object, built (and its members loaded or reused) on first access."""
        if self._ensemble is None:
            with _BUILD_LOCK:
                if self._ensemble is None:
                    self._ensemble = self._build()
        return self._ensemble

    def _build(self) -> SpecFuse:
        from specfuse_core.loading import load_preset_members, model_spec_member
        from specfuse_core.presets import preset_calibration

        if self.models is not None:
            members = [model_spec_member(spec, **self.member_kwargs) for spec in self.models]
            calibration = self.calibration
        else:
            members = load_preset_members(self.preset or "tiny", **self.member_kwargs)
            calibration = self.calibration or preset_calibration(self.preset or "tiny")
        # Settings are passed per request, so copies of this object with other settings may share it;
        # the calibration fills the trust settings (weights, roles, gating lead) a request leaves unset.
        return SpecFuse(members, EnsembleConfig(), calibration=calibration)

    # ------------------------------------------------------------------ token counting (the core counts)
    def get_token_ids(self, text: str) -> list[int]:
        """``text`` in the tokens of the member that counts ``max_tokens`` and usage (the first member),
        not LangChain's GPT-2 fallback. Loads the ensemble on first use; ``custom_get_token_ids`` wins."""
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        return self.ensemble.token_ids(text)

    def get_num_tokens(self, text: str) -> int:
        return len(self.get_token_ids(text))

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Tokens the counting member's prompt takes for ``messages``, chat template included (equal to
        ``usage_metadata["input_tokens"]`` of a call with them); works as ``trim_messages``'s
        ``token_counter``. ``tools`` are ignored with a warning: ChatSpecFuse has no tool calling."""
        if tools:
            warnings.warn("ChatSpecFuse has no tool calling: tool schemas are not counted", UserWarning, stacklevel=2)
        return self.ensemble.count_prompt_tokens(_to_conversation(messages))

    # ------------------------------------------------------------------ requests
    def _stop_list(self, stop: list[str] | None) -> list[str]:
        return list(dict.fromkeys([*(self.stop or []), *(stop or [])]))

    def _config(self, stop: list[str] | None, **kwargs: Any) -> dict[str, Any]:
        """EnsembleConfig overrides for one call: fields, then call-time kwargs (validated)."""
        kwargs.pop("stream", None)  # LangChain's own streaming switch, not a model setting
        model = kwargs.pop("model", None)
        if model is not None and model != self.model_name:
            raise ValueError(
                f"ChatSpecFuse cannot switch models per call (asked for {model!r}, this is "
                f"{self.model_name!r}); build another ChatSpecFuse instead"
            )
        allowed = set(EnsembleConfig.model_fields) | set(_RENAMED)
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ValueError(
                f"unsupported argument(s) for ChatSpecFuse: {', '.join(unknown)}. ChatSpecFuse has no tool "
                "calling or response formats; per-call settings are EnsembleConfig fields (max_tokens, "
                "temperature, segment_tokens, ...)"
            )
        merged = {**self._settings(), **{k: v for k, v in kwargs.items() if v is not None}}
        overrides = {_RENAMED.get(k, k): v for k, v in merged.items()}
        overrides["stop"] = list(stop or [])
        EnsembleConfig().with_overrides(**overrides)  # raises a readable ValidationError on bad values
        return overrides

    def _request_args(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[dict[str, str]], dict[str, Any]]:
        kwargs.pop(_STREAM_CONFIG, None)  # stream() falling back to invoke (disable_streaming) passes it on
        return _to_conversation(messages), self._config(self._stop_list(stop), **kwargs)

    # ------------------------------------------------------------------ entry points that do not pass a run manager
    def stream(self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any) -> Iterator[AIMessageChunk]:
        """LangChain's ``stream``; the run's id is fixed first so each segment's custom event is
        reported on this chat model's run (LangChain gives ``_stream`` no run manager here)."""
        config = _with_run_id(config)
        yield from super().stream(input, config, stop=stop, **{**kwargs, _STREAM_CONFIG: config})

    async def astream(self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        """LangChain's ``astream`` (and so ``astream_events``), with segment events on this model's run."""
        config = _with_run_id(config)
        async for chunk in super().astream(input, config, stop=stop, **{**kwargs, _STREAM_CONFIG: config}):
            yield chunk

    def _get_invocation_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.pop(_STREAM_CONFIG, None)  # plumbing, not a parameter of the call
        return super()._get_invocation_params(stop=stop, **kwargs)

    def _should_stream(self, *, async_api: bool, run_manager: Any = None, **kwargs: Any) -> bool:
        """``invoke`` never detours through ``_stream`` (``streaming=True``, or an event-streaming
        handler attached): ``_generate`` already reports every segment through the run manager's
        callbacks, and only it gets the run manager that puts segment events on this model's run."""
        if run_manager is not None:
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    # ------------------------------------------------------------------ sync
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        conversation, overrides = self._request_args(messages, stop, kwargs)
        records: list[dict[str, Any]] = []
        with self.ensemble.stream(conversation, **overrides) as stream:
            for event in stream:
                records.append(_record(event))
                if run_manager is not None:
                    chunk = self._chunk(event, stream.result() if event.finish_reason else None)
                    _dispatch(event, _model_run_callbacks(self, run_manager, None, CallbackManager))  # before its chunk
                    run_manager.on_llm_new_token(event.text, chunk=chunk)
            result = stream.result()
        return self._chat_result(result, records)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        events_to = _model_run_callbacks(self, run_manager, kwargs.pop(_STREAM_CONFIG, None), CallbackManager)
        conversation, overrides = self._request_args(messages, stop, kwargs)
        stream = self.ensemble.stream(conversation, **overrides)
        try:
            for event in stream:
                chunk = self._chunk(event, stream.result() if event.finish_reason else None)
                _dispatch(event, events_to)
                if run_manager is not None:
                    # LangChain passes a run manager to _stream only where it does not report the chunks
                    # itself (stream_events v3); stream() reports each yielded chunk.
                    run_manager.on_llm_new_token(event.text, chunk=chunk)
                yield chunk
        finally:
            stream.close()

    # ------------------------------------------------------------------ async (one worker-thread hop per segment)
    async def _aensemble(self) -> SpecFuse:
        if self._ensemble is None:  # loading weights takes seconds: keep it off the event loop
            return await asyncio.to_thread(lambda: self.ensemble)
        return self._ensemble

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        conversation, overrides = self._request_args(messages, stop, kwargs)
        ensemble = await self._aensemble()
        stream = await asyncio.to_thread(ensemble.astream, conversation, **overrides)  # tokenises the prompt
        records: list[dict[str, Any]] = []
        try:
            async for event in stream:
                records.append(_record(event))
                if run_manager is not None:
                    chunk = self._chunk(event, stream.result() if event.finish_reason else None)
                    await _adispatch(event, _model_run_callbacks(self, run_manager, None, AsyncCallbackManager))
                    await run_manager.on_llm_new_token(event.text, chunk=chunk)
                if event.finish_reason:
                    break  # the request is done: no further thread hop just to learn that
            result = stream.result()
        finally:
            await stream.aclose()
        return self._chat_result(result, records)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        events_to = _model_run_callbacks(self, run_manager, kwargs.pop(_STREAM_CONFIG, None), AsyncCallbackManager)
        conversation, overrides = self._request_args(messages, stop, kwargs)
        ensemble = await self._aensemble()
        stream = await asyncio.to_thread(ensemble.astream, conversation, **overrides)
        try:
            async for event in stream:
                chunk = self._chunk(event, stream.result() if event.finish_reason else None)
                await _adispatch(event, events_to)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(event.text, chunk=chunk)
                yield chunk
                if event.finish_reason:
                    break
        finally:
            await stream.aclose()

    # ------------------------------------------------------------------ output
    def _final_metadata(self, result: GenerationResult) -> tuple[dict[str, Any], UsageMetadata]:
        metadata = {
            "model_name": self.model_name,
            "finish_reason": result.finish_reason,
            "trace": result.trace.summary(),
            "member_usage": {name: usage.model_dump() for name, usage in result.usage.members.items()},
        }
        usage = UsageMetadata(
            input_tokens=result.usage.prompt_tokens,
            output_tokens=result.usage.completion_tokens,
            total_tokens=result.usage.total_tokens,
        )
        return metadata, usage

    def _chunk(self, event: SegmentEvent, result: GenerationResult | None) -> ChatGenerationChunk:
        """One segment; ``result`` (given for the last segment) adds usage, finish reason and trace."""
        metadata: dict[str, Any] = {"model_provider": PROVIDER, "segments": [_record(event)]}
        usage = None
        if result is not None:
            final, usage = self._final_metadata(result)
            metadata.update(final)
        message = AIMessageChunk(
            content=event.text,
            response_metadata=metadata,
            usage_metadata=usage,
            chunk_position="last" if result is not None else None,
        )
        return ChatGenerationChunk(message=message)

    def _chat_result(self, result: GenerationResult, records: list[dict[str, Any]]) -> ChatResult:
        final, usage = self._final_metadata(result)
        message = AIMessage(
            content=result.text,
            response_metadata={"model_provider": PROVIDER, "segments": records, **final},
            usage_metadata=usage,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


# ---------------------------------------------------------------------- helpers
def _record(event: SegmentEvent) -> dict[str, Any]:
    """Provenance of one segment. No "index" key: LangChain merges list items that carry one."""
    return {
        "round": event.round,
        "member": event.member,
        "proposers": list(event.proposers),
        "scores": dict(event.scores),
        "active_members": list(event.active_members),
        "text": event.text,
        "faults": [fault.model_dump() for fault in event.faults],
    }


def _event_data(event: SegmentEvent) -> dict[str, Any]:
    return {**_record(event), "segment": event.segment, "finish_reason": event.finish_reason}


def _model_run_callbacks(model: "ChatSpecFuse", run_manager: Any, stream_config: Any, manager_class: type) -> Any:
    """A callback manager whose parent run is this chat model's own run, so a custom event dispatched
    through it is reported on that run (LLM run managers have no ``get_child``).

    ``invoke``/``batch`` and ``stream_events(version="v3")`` hand the model its run manager. ``stream``
    and ``astream`` (so ``astream_events``) do not: :meth:`ChatSpecFuse.stream` fixes the run's id in
    the config beforehand and passes that config along (``stream_config``), and the manager is built
    from it the way LangChain builds the run's own. None: no run to report to.
    """
    if run_manager is not None:
        return manager_class(
            handlers=list(run_manager.handlers),
            inheritable_handlers=list(run_manager.inheritable_handlers),
            parent_run_id=run_manager.run_id,
            tags=list(run_manager.tags),
            inheritable_tags=list(run_manager.inheritable_tags),
            metadata=dict(run_manager.metadata),
            inheritable_metadata=dict(run_manager.inheritable_metadata),
        )
    if stream_config is None:
        return None
    manager = manager_class.configure(
        stream_config.get("callbacks"),
        model.callbacks,
        model.verbose,
        stream_config.get("tags"),
        model.tags,
        stream_config.get("metadata"),
        model.metadata,
    )
    manager.parent_run_id = stream_config["run_id"]
    return manager


def _dispatch(event: SegmentEvent, callbacks: CallbackManager | None) -> None:
    """The segment's custom event, on the chat model's run (see :func:`_model_run_callbacks`)."""
    if callbacks is not None:
        dispatch_custom_event(SEGMENT_EVENT, _event_data(event), config=RunnableConfig(callbacks=callbacks))


async def _adispatch(event: SegmentEvent, callbacks: AsyncCallbackManager | None) -> None:
    if callbacks is not None:
        await adispatch_custom_event(SEGMENT_EVENT, _event_data(event), config=RunnableConfig(callbacks=callbacks))


def _with_run_id(config: RunnableConfig | None) -> RunnableConfig:
    """The call's config with the chat model run's id fixed in advance (LangChain uses a given
    ``run_id`` for the run it opens), so the segment events can name that run."""
    config = ensure_config(config)
    if config.get("run_id") is None:
        config["run_id"] = uuid.uuid4()
    return config


def _to_conversation(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> specfuse conversation. Text only; tool and multimodal input are refused."""
    conversation = []
    for message in messages:
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, AIMessage):
            role = "assistant"
        elif isinstance(message, ChatMessage) and message.role.lower() in _ROLES:
            role = _ROLES[message.role.lower()]
        else:
            raise ValueError(
                f"ChatSpecFuse cannot take a {type(message).__name__} "
                f"(role {getattr(message, 'role', message.type)!r}): it has no tool calling; "
                "pass system, human and AI messages"
            )
        if isinstance(message.content, list):
            for block in message.content:
                kind = block.get("type") if isinstance(block, dict) else "text"
                if kind != "text":
                    raise ValueError(f"ChatSpecFuse accepts text only; got a {kind!r} content block")
        conversation.append({"role": role, "content": message.text})
    return conversation
