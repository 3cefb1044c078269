"""LangChain chat model for a SpecFuse ensemble of local LLMs.

A thin adapter over :mod:`specfuse_core.integration`: it converts LangChain messages to a
conversation and each accepted segment to one ``AIMessageChunk``. ``_generate`` and ``_stream`` are
built from the same chunk iterator (as ``ChatOllama`` does), so both report the same chunks and events.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing, closing
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage, FunctionMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig, ensure_config
from pydantic import Field, PrivateAttr, model_validator
from typing_extensions import Self

from specfuse_core import EnsembleConfig, SpecFuse, UnsupportedFeatureError
from specfuse_core.integration import (
    PROVIDER,
    EnsembleSource,
    FinalReport,
    LazyEnsemble,
    SegmentStep,
    aopen_stream,
    asegment_steps,
    check_config_dict,
    core_default,
    open_stream,
    request_config,
    route_config_keywords,
    segment_steps,
    split_call_arguments,
    tool_message_error,
)

_STREAM_CONFIG = "_specfuse_stream_config"  # keyword that carries stream()'s config to _stream

SEGMENT_EVENT = "specfuse_segment"
"""Name of the custom callback event dispatched once per accepted segment."""

_TYPED_SETTINGS = ("segment_tokens", "max_tokens", "temperature", "top_p", "top_k", "seed", "timeout")
_ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "ai": "assistant"}


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
    segment (``round``, ``member``, ``proposers``, ``scores``, ``active_members``, ``text``, ...); lists
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

    # ------------------------------------------------------------------ common settings (None: the core default)
    segment_tokens: int | None = None
    """Tokens each member drafts per round."""
    max_tokens: int | None = None
    """Output length cap (``max_new_tokens``), counted in the first member's tokens."""
    temperature: float | None = None
    """0 (the default) drafts greedily."""
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    """Stop strings; call-time ``stop`` adds to these. Output is cut before the first match."""
    timeout: float | None = None
    """Wall-clock limit of one request in seconds (``EnsembleConfig.timeout_s``), checked between rounds:
    on expiry the answer ends with the text so far and ``finish_reason="timeout"``."""
    ensemble_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Any other ``EnsembleConfig`` field, e.g. ``{"exclude_self_vote": True}`` (also accepted as keywords)."""

    streaming: bool = False
    """Route ``invoke`` through streaming (segments are reported through callbacks either way)."""

    _ensemble: LazyEnsemble = PrivateAttr(default_factory=LazyEnsemble)

    def __init__(self, ensemble: SpecFuse | None = None, **kwargs: Any) -> None:
        """``ensemble``: an already-built :class:`specfuse_core.SpecFuse` to run (instead of ``preset`` /
        ``models``); this model's settings still configure each request."""
        super().__init__(**kwargs)
        self._ensemble = LazyEnsemble(ensemble)
        if ensemble is None:  # an unknown preset, a wrong path or an uncached hub id fails here
            self._source.check_exists()

    # ------------------------------------------------------------------ validation (cheap: no model loading)
    @model_validator(mode="before")
    @classmethod
    def _collect_ensemble_kwargs(cls, values: Any) -> Any:
        """Accept any EnsembleConfig field as a keyword (into ``ensemble_kwargs``); warn about the rest."""
        if not isinstance(values, dict):
            return values
        values = route_config_keywords(dict(values), cls.model_fields, into="ensemble_kwargs")
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
        if self.models is None and self.preset is None:
            self.preset = "tiny"
        self._source.check_shape()
        check_config_dict(self.ensemble_kwargs, "ensemble_kwargs")
        request_config(self._settings())  # fail now, not on the first call, on bad values
        return self

    # ------------------------------------------------------------------ identity
    @property
    def _llm_type(self) -> str:
        return "specfuse-chat"

    @property
    def _source(self) -> EnsembleSource:
        models = tuple(self.models) if self.models is not None else None
        return EnsembleSource(self.preset, models, self.member_kwargs, self.calibration)

    @property
    def member_names(self) -> list[str]:
        """Member names, known without loading any weights."""
        return self._ensemble.member_names(self._source)

    @property
    def model_name(self) -> str:
        """``specfuse:<preset>``, or ``specfuse:<member>+<member>...`` for explicit models."""
        return self._ensemble.model_name(self._source)

    @property
    def is_loaded(self) -> bool:
        return self._ensemble.current(self._source) is not None

    def _settings(self) -> dict[str, Any]:
        """The settings this instance sets (None fields fall back to the core defaults), by field name."""
        settings = {name: getattr(self, name) for name in _TYPED_SETTINGS if getattr(self, name) is not None}
        if self.stop:
            settings["stop"] = list(self.stop)
        return {**settings, **self.ensemble_kwargs}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"model_name": self.model_name, "members": self.member_names}
        if self.models is None:
            params["preset"] = self.preset
        else:
            params["models"] = list(self.models)
        if self.member_kwargs:
            params["member_kwargs"] = {k: str(v) for k, v in self.member_kwargs.items()}
        return {**params, **self._settings()}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider=PROVIDER, ls_model_name=model if isinstance(model, str) else self.model_name, ls_model_type="chat"
        )
        temperature = kwargs.get("temperature", self.temperature)
        params["ls_temperature"] = float(temperature if temperature is not None else core_default("temperature"))
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        params["ls_max_tokens"] = int(max_tokens if max_tokens is not None else core_default("max_new_tokens"))
        stops = list(dict.fromkeys([*(self.stop or []), *(stop or [])]))
        if stops:
            params["ls_stop"] = stops
        params["ls_ensemble_members"] = self.member_names  # type: ignore[typeddict-unknown-key]
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        return ModelProfile(
            open_weights=True, text_inputs=True, image_inputs=False, audio_inputs=False, video_inputs=False,
            pdf_inputs=False, text_outputs=True, tool_calling=False, structured_output=False,
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

    # ------------------------------------------------------------------ the ensemble and token counting
    @property
    def ensemble(self) -> SpecFuse:
        """The :class:`SpecFuse` object, built (and its members loaded or reused) on first access."""
        return self._ensemble.get(self._source)

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
    def _request_config(self, stop: list[str] | None, **kwargs: Any) -> EnsembleConfig:
        """One call's validated configuration: fields, then call-time arguments (see
        :func:`specfuse_core.integration.split_call_arguments`); call stops add to the field's."""
        call = split_call_arguments(kwargs, model=self.model_name, framework={"stream"}, adapter="ChatSpecFuse")
        return request_config(self._settings(), call.overrides, stop=[*(stop or []), *call.stop])

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> tuple[list[dict[str, str]], EnsembleConfig]:
        kwargs.pop(_STREAM_CONFIG, None)  # stream() falling back to invoke (disable_streaming) passes it on
        return _to_conversation(messages), self._request_config(stop, **kwargs)

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

    # ------------------------------------------------------------------ the chunk iterators _generate and _stream share
    def _chunks(self, messages: list[BaseMessage], stop: list[str] | None, run_manager: CallbackManagerForLLMRun | None, kwargs: dict[str, Any]) -> Iterator[tuple[ChatGenerationChunk, SegmentStep]]:
        events_to = _model_run_callbacks(self, run_manager, kwargs.pop(_STREAM_CONFIG, None), CallbackManager)
        conversation, config = self._request(messages, stop, kwargs)
        with closing(segment_steps(open_stream(self.ensemble, conversation, config))) as steps:
            for step in steps:
                chunk = self._chunk(step)
                if events_to is not None:  # the segment's custom event, on this model's run, before its chunk
                    dispatch_custom_event(SEGMENT_EVENT, step.record, config=RunnableConfig(callbacks=events_to))
                if run_manager is not None:
                    run_manager.on_llm_new_token(step.event.text, chunk=chunk)
                yield chunk, step

    async def _achunks(self, messages: list[BaseMessage], stop: list[str] | None, run_manager: AsyncCallbackManagerForLLMRun | None, kwargs: dict[str, Any]) -> AsyncIterator[tuple[ChatGenerationChunk, SegmentStep]]:
        events_to = _model_run_callbacks(self, run_manager, kwargs.pop(_STREAM_CONFIG, None), AsyncCallbackManager)
        conversation, config = self._request(messages, stop, kwargs)
        stream = await aopen_stream(self._ensemble, self._source, conversation, config)
        async with aclosing(asegment_steps(stream)) as steps:
            async for step in steps:
                chunk = self._chunk(step)
                if events_to is not None:
                    await adispatch_custom_event(SEGMENT_EVENT, step.record, config=RunnableConfig(callbacks=events_to))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(step.event.text, chunk=chunk)
                yield chunk, step

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._chat_result([step for _, step in self._chunks(messages, stop, run_manager, kwargs)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        # LangChain passes a run manager to _stream only where it does not report the chunks itself
        # (stream_events v3); stream() reports each yielded chunk.
        for chunk, _ in self._chunks(messages, stop, run_manager, kwargs):
            yield chunk

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._chat_result([step async for _, step in self._achunks(messages, stop, run_manager, kwargs)])

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk, _ in self._achunks(messages, stop, run_manager, kwargs):
            yield chunk

    # ------------------------------------------------------------------ output
    def _final_metadata(self, final: FinalReport) -> tuple[dict[str, Any], UsageMetadata]:
        counts = final.token_counts()
        metadata = {
            "model_name": self.model_name,
            "finish_reason": final.finish_reason,
            "trace": final.details()["trace"],
            "member_usage": final.member_usage(),
        }
        usage = UsageMetadata(input_tokens=counts["prompt_tokens"], output_tokens=counts["completion_tokens"], total_tokens=counts["total_tokens"])
        return metadata, usage

    def _chunk(self, step: SegmentStep) -> ChatGenerationChunk:
        """One segment; the last one adds usage, finish reason and trace."""
        metadata: dict[str, Any] = {"model_provider": PROVIDER, "segments": [step.record]}
        usage = None
        if step.final is not None:
            final, usage = self._final_metadata(step.final)
            metadata.update(final)
        message = AIMessageChunk(
            content=step.event.text, response_metadata=metadata, usage_metadata=usage, chunk_position="last" if step.final else None
        )
        return ChatGenerationChunk(message=message)

    def _chat_result(self, steps: list[SegmentStep]) -> ChatResult:
        final = steps[-1].final
        if final is None:
            raise RuntimeError("the request ended without a final segment")
        metadata, usage = self._final_metadata(final)
        segments = [step.record for step in steps]
        message = AIMessage(
            content=final.result.text, response_metadata={"model_provider": PROVIDER, "segments": segments, **metadata}, usage_metadata=usage
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


# ---------------------------------------------------------------------- helpers
def _model_run_callbacks(model: ChatSpecFuse, run_manager: Any, stream_config: Any, manager_class: type) -> Any:
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
        stream_config.get("callbacks"), model.callbacks, model.verbose, stream_config.get("tags"), model.tags,
        stream_config.get("metadata"), model.metadata,
    )
    manager.parent_run_id = stream_config["run_id"]
    return manager


def _with_run_id(config: RunnableConfig | None) -> RunnableConfig:
    """The call's config with the chat model run's id fixed in advance (LangChain uses a given
    ``run_id`` for the run it opens), so the segment events can name that run."""
    config = ensure_config(config)
    if config.get("run_id") is None:
        config["run_id"] = uuid.uuid4()
    return config


def _to_conversation(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> specfuse conversation. Text only; tool results and multimodal input are
    refused (see :func:`specfuse_core.integration.tool_message_error`)."""
    conversation = []
    for index, message in enumerate(messages):
        if isinstance(message, (ToolMessage, FunctionMessage)) or (isinstance(message, ChatMessage) and message.role.lower() in ("tool", "function")):
            raise tool_message_error("ChatSpecFuse", index, getattr(message, "role", message.type))
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
                f"ChatSpecFuse cannot take a {type(message).__name__} (role {getattr(message, 'role', message.type)!r}); "
                "pass system, human and AI messages"
            )
        if isinstance(message.content, list):
            for block in message.content:
                kind = block.get("type") if isinstance(block, dict) else "text"
                if kind != "text":
                    raise ValueError(f"ChatSpecFuse accepts text only; got a {kind!r} content block")
        conversation.append({"role": role, "content": message.text})
    return conversation
