"""LangChain chat model for a SpecFuse ensemble of local LLMs.

A thin adapter over :mod:`specfuse_core.integration`: it converts LangChain messages to a
conversation and each accepted segment to one ``AIMessageChunk``. ``_generate`` and ``_stream`` are
built from the same chunk iterator (as ``ChatOllama`` does), so both report the same chunks and events.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing, closing
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr, model_validator
from typing_extensions import Self

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core import integration
from specfuse_core.integration import PROVIDER, EnsembleSource, LazyEnsemble, SegmentStep

from .callbacks import model_run_callbacks, with_run_id
from .messages import to_conversation
from .outputs import chat_result, segment_chunk
from .structured import structured_runnable

_STREAM_CONFIG = "_specfuse_stream_config"  # keyword that carries stream()'s config to _stream

SEGMENT_EVENT = "specfuse_segment"
"""Name of the custom callback event dispatched once per accepted segment."""

_TYPED_SETTINGS = ("segment_tokens", "max_tokens", "temperature", "top_p", "top_k", "seed", "timeout")


class ChatSpecFuse(BaseChatModel):
    """Chat model backed by a SpecFuse segment-level ensemble of local causal LMs.

    Each round every member drafts ``segment_tokens`` tokens, every member scores every candidate and the
    best one is appended; streaming yields one ``AIMessageChunk`` per accepted segment. Construction is
    cheap: the ensemble is built on first use from a process-wide member cache.

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
    """Output length cap (``max_new_tokens``), counted in the counting member's tokens."""
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
        values = integration.route_config_keywords(dict(values), cls.model_fields, into="ensemble_kwargs")
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
        integration.check_config_dict(self.ensemble_kwargs, "ensemble_kwargs")
        integration.request_config(self._settings())  # fail now, not on the first call, on bad values
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
        params["ls_temperature"] = float(temperature if temperature is not None else integration.core_default("temperature"))
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        params["ls_max_tokens"] = int(max_tokens if max_tokens is not None else integration.core_default("max_new_tokens"))
        stops = list(dict.fromkeys([*(self.stop or []), *(stop or [])]))
        if stops:
            params["ls_stop"] = stops
        params["ls_ensemble_members"] = self.member_names  # type: ignore[typeddict-unknown-key]
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        no = dict.fromkeys(("image_inputs", "audio_inputs", "video_inputs", "pdf_inputs"), False)
        return ModelProfile(open_weights=True, text_inputs=True, text_outputs=True, tool_calling=True, tool_choice=True, structured_output=True, **no)

    # ------------------------------------------------------------------ tools and structured output (constrained decoding in the core)
    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (functions, ``BaseTool``, pydantic classes or OpenAI dicts). ``tool_choice``:
        ``"auto"``, ``"any"``/``"required"``/``True``, ``"none"`` or a tool name. Every member drafts
        under the grammar "text or valid calls" (only calls unless ``auto``)."""
        kwargs.pop("strict", None)  # decoding is always constrained to the schemas
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self, schema: Any = None, *, method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False, strict: bool | None = None, **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Replies as ``schema`` (a pydantic class, TypedDict, JSON Schema or OpenAI tool dict).
        ``json_schema`` constrains the reply to the schema; ``function_calling`` to one call of it as a
        tool; ``json_mode`` to any JSON object (describe the shape in the prompt). Output is always
        schema-exact (``strict`` is accepted for compatibility and changes nothing)."""
        if kwargs:
            raise ValueError(f"unsupported arguments for with_structured_output: {sorted(kwargs)}")
        return structured_runnable(self, schema, method, include_raw)

    # ------------------------------------------------------------------ the ensemble and token counting
    @property
    def ensemble(self) -> SpecFuse:
        """The :class:`SpecFuse` object, built (and its members loaded or reused) on first access."""
        return self._ensemble.get(self._source)

    def get_token_ids(self, text: str) -> list[int]:
        """``text`` in the tokens of the member that counts ``max_tokens`` and usage
        (``counting_member``, default the first), not LangChain's
        GPT-2 fallback. Loads the ensemble on first use; ``custom_get_token_ids`` wins."""
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        return self.ensemble.token_ids(text)

    def get_num_tokens(self, text: str) -> int:
        return len(self.get_token_ids(text))

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Tokens the counting member's prompt takes for ``messages``, chat template included (equal to
        ``usage_metadata["input_tokens"]`` of a call with them); works as ``trim_messages``'s
        ``token_counter``. ``tools`` are counted as the counting member's prompt shows them."""
        formatted = [convert_to_openai_tool(tool) for tool in tools or ()]
        return self.ensemble.count_prompt_tokens(to_conversation(messages), tools=formatted or None)

    # ------------------------------------------------------------------ batches
    def batch(self, inputs: list[LanguageModelInput], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[AIMessage]:  # type: ignore[override]
        """As LangChain's, but with ``max_concurrency`` defaulting to the ensemble's ``max_batch_requests``:
        LangChain's default thread pool (cores + 4 threads) would run fewer inputs at once than one
        shared round takes on a small machine (6 on two cores)."""
        return super().batch(inputs, self._batch_config(config, len(inputs)), return_exceptions=return_exceptions, **kwargs)

    def batch_as_completed(self, inputs: Sequence[LanguageModelInput], config: RunnableConfig | Sequence[RunnableConfig] | None = None,
                           *, return_exceptions: bool = False, **kwargs: Any) -> Iterator[tuple[int, Any]]:  # type: ignore[override]
        """As :meth:`batch`: ``max_concurrency`` defaults to the ensemble's ``max_batch_requests``."""
        yield from super().batch_as_completed(inputs, self._batch_config(config, len(inputs)), return_exceptions=return_exceptions, **kwargs)

    def _batch_config(self, config: RunnableConfig | Sequence[RunnableConfig] | None, count: int) -> list[RunnableConfig]:
        """One config per input, each with ``max_concurrency`` set (the caller's value wins)."""
        configs = list(config) if isinstance(config, Sequence) else [config or {}] * max(count, 1)
        cap = self.ensemble.config.max_batch_requests
        return [c if c.get("max_concurrency") is not None else {**c, "max_concurrency": cap} for c in configs]

    # ------------------------------------------------------------------ requests
    def _split(self, kwargs: dict[str, Any]) -> integration.CallArguments:
        return integration.split_call_arguments(
            kwargs, model=self.model_name, framework={"stream", "ls_structured_output_format"}, adapter="ChatSpecFuse"
        )

    def _request_config(self, stop: list[str] | None, **kwargs: Any) -> EnsembleConfig:
        """One call's validated configuration: fields, then call-time arguments (see
        :func:`specfuse_core.integration.split_call_arguments`); call stops add to the field's."""
        return self._config_of(self._split(kwargs), stop)

    def _config_of(self, call: integration.CallArguments, stop: list[str] | None) -> EnsembleConfig:
        return integration.request_config(self._settings(), call.overrides, stop=[*(stop or []), *call.stop])

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> tuple[list[dict[str, Any]], EnsembleConfig, dict[str, Any]]:
        """The conversation, the configuration and the output arguments (response_format, tools, tool_choice)."""
        kwargs.pop(_STREAM_CONFIG, None)  # stream() falling back to invoke (disable_streaming) passes it on
        call = self._split(kwargs)
        return to_conversation(messages), self._config_of(call, stop), call.output

    # ------------------------------------------------------------------ entry points that do not pass a run manager
    def stream(self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any) -> Iterator[AIMessageChunk]:
        """LangChain's ``stream``; the run's id is fixed first so each segment's custom event is
        reported on this chat model's run (LangChain gives ``_stream`` no run manager here)."""
        config = with_run_id(config)
        yield from super().stream(input, config, stop=stop, **{**kwargs, _STREAM_CONFIG: config})

    async def astream(self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None, **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        """LangChain's ``astream`` (and so ``astream_events``), with segment events on this model's run."""
        config = with_run_id(config)
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
        events_to = model_run_callbacks(self, run_manager, kwargs.pop(_STREAM_CONFIG, None), CallbackManager)
        conversation, config, output = self._request(messages, stop, kwargs)
        with closing(integration.segment_steps(integration.open_stream(self.ensemble, conversation, config, output))) as steps:
            for step in steps:
                chunk = segment_chunk(step, self.model_name)
                if events_to is not None:  # the segment's custom event, on this model's run, before its chunk
                    dispatch_custom_event(SEGMENT_EVENT, step.record, config=RunnableConfig(callbacks=events_to))
                if run_manager is not None:
                    run_manager.on_llm_new_token(step.delta, chunk=chunk)
                yield chunk, step

    async def _achunks(self, messages: list[BaseMessage], stop: list[str] | None, run_manager: AsyncCallbackManagerForLLMRun | None, kwargs: dict[str, Any]) -> AsyncIterator[tuple[ChatGenerationChunk, SegmentStep]]:
        events_to = model_run_callbacks(self, run_manager, kwargs.pop(_STREAM_CONFIG, None), AsyncCallbackManager)
        conversation, config, output = self._request(messages, stop, kwargs)
        stream = await integration.aopen_stream(self._ensemble, self._source, conversation, config, output)
        async with aclosing(integration.asegment_steps(stream)) as steps:
            async for step in steps:
                chunk = segment_chunk(step, self.model_name)
                if events_to is not None:
                    await adispatch_custom_event(SEGMENT_EVENT, step.record, config=RunnableConfig(callbacks=events_to))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(step.delta, chunk=chunk)
                yield chunk, step

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return chat_result([step for _, step in self._chunks(messages, stop, run_manager, kwargs)], self.model_name)

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        # LangChain passes a run manager to _stream only where it does not report the chunks itself
        # (stream_events v3); stream() reports each yielded chunk.
        for chunk, _ in self._chunks(messages, stop, run_manager, kwargs):
            yield chunk

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return chat_result([step async for _, step in self._achunks(messages, stop, run_manager, kwargs)], self.model_name)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk, _ in self._achunks(messages, stop, run_manager, kwargs):
            yield chunk
