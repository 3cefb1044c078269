"""``SpecFuseLLM``: a LlamaIndex ``LLM`` backed by a local SpecFuse segment-level ensemble."""

import asyncio
import logging
import threading
from contextlib import aclosing, closing
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Literal, Optional, Sequence, Tuple

from llama_index.core.base.llms.generic_utils import messages_to_prompt as generic_messages_to_prompt
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, model_validator
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM

from specfuse_core import EnsembleConfig, GenerationResult, SegmentEvent, SpecFuse
from specfuse_core.errors import UnsupportedFeatureError
from specfuse_core.loading import check_model_specs
from specfuse_core.presets import preset_calibration, preset_members

from .events import SpecFuseSegmentEvent
from .messages import CoreMessage, to_core_messages, with_system_prompt

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

_DEFAULTS = EnsembleConfig()
_CONFIG_FIELDS: Tuple[str, ...] = tuple(EnsembleConfig.model_fields)
_BUILD_LOCK = threading.Lock()  # one ensemble build at a time per process (members are cached anyway)


def _default(name: str) -> Any:
    return getattr(_DEFAULTS, name)


def _describe(name: str) -> str:
    return EnsembleConfig.model_fields[name].description or f"EnsembleConfig.{name}"


class SpecFuseLLM(LLM):
    """A SpecFuse ensemble of local causal LMs as a LlamaIndex chat LLM.

    Every round, each member drafts ``segment_tokens`` tokens, every member scores every candidate,
    and the best candidate is appended. Streaming yields one response per accepted segment.

    Members load lazily on first use (or on :meth:`load` / :meth:`aload`) from the core's
    process-wide cache, so many ``SpecFuseLLM`` objects over the same models share one copy of the
    weights.

    Examples:
        ```python
        from llama_index.core import Settings
        from llamaindex_specfuse import SpecFuseLLM

        Settings.llm = SpecFuseLLM(preset="tiny", max_new_tokens=128)
        print(Settings.llm.complete("Name three primary colours."))
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    # -- which models
    preset: Optional[str] = Field(default="tiny", description="Packaged ensemble to load (see specfuse_core.presets).")
    models: Optional[List[str]] = Field(
        default=None,
        description="Model directories, hub ids or .gguf files to ensemble; when given, replaces the preset.",
    )
    member_kwargs: Dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for member loading (e.g. dtype, device)."
    )
    context_window: Optional[int] = Field(
        default=None,
        gt=0,
        description="Override of the smallest member context window (lets metadata be read without loading).",
    )
    calibration: Optional[str] = Field(
        default=None,
        description="A `specfuse calibrate` file (member weights, roles, gating lead); default: the preset's own, if it ships one.",
    )
    additional_kwargs: Dict[str, Any] = Field(
        default_factory=dict, description="Any other EnsembleConfig field, e.g. {'gate_threshold': -0.3, 'roles': {...}}."
    )

    # -- decoding (mirrors specfuse_core.EnsembleConfig; per-call keyword arguments override them)
    segment_tokens: int = Field(default=_default("segment_tokens"), ge=1, le=256, description=_describe("segment_tokens"))
    max_new_tokens: int = Field(default=_default("max_new_tokens"), ge=1, description=_describe("max_new_tokens"))
    max_rounds: Optional[int] = Field(default=_default("max_rounds"), ge=1, description=_describe("max_rounds"))
    temperature: float = Field(default=_default("temperature"), ge=0.0, description=_describe("temperature"))
    top_p: float = Field(default=_default("top_p"), gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int = Field(default=_default("top_k"), ge=0, description=_describe("top_k"))
    seed: Optional[int] = Field(default=_default("seed"), description=_describe("seed"))
    stop: List[str] = Field(default_factory=list, description=_describe("stop"))

    # -- scoring and combination
    normalization: Literal["softmax", "rank"] = Field(default=_default("normalization"), description="Per-verifier score normalisation.")
    score_temperature: float = Field(default=_default("score_temperature"), gt=0.0, description=_describe("score_temperature"))
    weighting: Literal["uniform", "hedge"] = Field(default=_default("weighting"), description="How verifier votes are weighted.")
    hedge_learning_rate: float = Field(default=_default("hedge_learning_rate"), gt=0.0, description=_describe("hedge_learning_rate"))
    persist_weights: bool = Field(default=_default("persist_weights"), description=_describe("persist_weights"))
    exclude_self_vote: bool = Field(default=_default("exclude_self_vote"), description=_describe("exclude_self_vote"))
    repetition_penalty: float = Field(default=_default("repetition_penalty"), ge=0.0, description=_describe("repetition_penalty"))
    end_of_turn_scoring: Literal["token", "text_only"] = Field(default=_default("end_of_turn_scoring"), description=_describe("end_of_turn_scoring"))
    consensus_weight: float = Field(default=_default("consensus_weight"), ge=0.0, description=_describe("consensus_weight"))

    # -- whom to trust (a calibration fills those left empty)
    member_weights: Dict[str, float] = Field(default_factory=dict, description=_describe("member_weights"))
    roles: Dict[str, Literal["both", "draft", "verify"]] = Field(default_factory=dict, description=_describe("roles"))
    gate_threshold: Optional[float] = Field(default=_default("gate_threshold"), description=_describe("gate_threshold"))
    lead_member: Optional[str] = Field(default=_default("lead_member"), description=_describe("lead_member"))

    # -- model exit
    model_exit: bool = Field(default=_default("model_exit"), description="Let persistently weak members leave a request early.")
    exit_warmup_rounds: int = Field(default=_default("exit_warmup_rounds"), ge=1, description="Rounds before model exit is considered.")
    exit_temperature: float = Field(default=_default("exit_temperature"), gt=0.0, description="Temperature of the exit softmax.")
    exit_threshold: float = Field(default=_default("exit_threshold"), ge=0.0, lt=1.0, description=_describe("exit_threshold"))
    min_members: int = Field(default=_default("min_members"), ge=1, description="Members that always stay.")
    exited_members_verify: bool = Field(default=_default("exited_members_verify"), description=_describe("exited_members_verify"))

    # -- bad input and reliability
    context_overflow: Literal["error", "skip_member"] = Field(
        default=_default("context_overflow"), description="A prompt too long for a member: raise, or let it sit out."
    )

    timeout_s: Optional[float] = Field(default=_default("timeout_s"), gt=0.0, description=_describe("timeout_s"))

    _ensemble: Optional[SpecFuse] = PrivateAttr(default=None)
    _ensemble_key: Optional[tuple] = PrivateAttr(default=None)

    def __init__(self, ensemble: Optional[SpecFuse] = None, **data: Any) -> None:
        """``ensemble``: an already-built :class:`specfuse_core.SpecFuse` whose members to use
        (its weights are shared; this LLM's fields still set each request's configuration).
        See also :meth:`from_ensemble`."""
        if ensemble is not None:
            data.setdefault("preset", None)
        super().__init__(**data)
        if ensemble is not None:
            self._ensemble = SpecFuse(ensemble.members, self.ensemble_config(), calibration=self.calibration or ensemble.calibration)
            self._ensemble_key = self._source_key()
        elif not self.models and not self.preset:
            raise ValueError("SpecFuseLLM needs a preset, a list of models, or an ensemble")
        elif self.models:  # a wrong path or uncached hub id fails here, not at the first call
            check_model_specs(self.models)

    @model_validator(mode="after")
    def _check_settings(self) -> "SpecFuseLLM":
        if self.models is not None and len(self.models) == 0:
            raise ValueError("models is empty: give at least one model path or hub id, or leave it unset")
        if not self.models and self.preset:
            preset_members(self.preset)  # PresetNotFoundError now, not at the first call
        self.ensemble_config()  # every decoding setting is valid together
        return self

    @classmethod
    def class_name(cls) -> str:
        return "SpecFuseLLM"

    @classmethod
    def from_ensemble(cls, ensemble: SpecFuse, **kwargs: Any) -> "SpecFuseLLM":
        """An LLM over an existing ensemble's members, starting from that ensemble's configuration."""
        settings = {**ensemble.config.model_dump(), **kwargs}
        return cls(ensemble=ensemble, **settings)

    # ------------------------------------------------------------------ ensemble
    def ensemble_config(self, **overrides: Any) -> EnsembleConfig:
        """The validated core configuration of a request: the fields, then per-call overrides."""
        unknown = sorted(set(self.additional_kwargs) - set(_CONFIG_FIELDS))
        if unknown:
            raise ValueError(f"additional_kwargs has unknown EnsembleConfig fields: {', '.join(unknown)}")
        settings = {name: getattr(self, name) for name in _CONFIG_FIELDS if name in type(self).model_fields}
        return EnsembleConfig.model_validate({**settings, **self.additional_kwargs, **overrides})

    def _source_key(self) -> tuple:
        return (self.preset, tuple(self.models or ()), repr(sorted(self.member_kwargs.items())), self.calibration)

    def _source_names(self) -> List[str]:
        if self._ensemble is not None and (self._ensemble_key == self._source_key() or not (self.models or self.preset)):
            return list(self._ensemble.member_names)
        if self.models:
            return [_spec_name(spec) for spec in self.models]
        return [m.name for m in preset_members(self.preset)] if self.preset else []

    @property
    def is_loaded(self) -> bool:
        return self._ensemble is not None

    @property
    def ensemble(self) -> SpecFuse:
        """The underlying :class:`specfuse_core.SpecFuse` (loads the members on first access)."""
        key = self._source_key()
        if self._ensemble is not None and (self._ensemble_key == key or not (self.models or self.preset)):
            return self._ensemble
        with _BUILD_LOCK:
            if self._ensemble is None or self._ensemble_key != key:
                self._ensemble = self._build()
                self._ensemble_key = key
        return self._ensemble

    def _build(self) -> SpecFuse:
        from specfuse_core.loading import load_preset_members, model_spec_member

        if self.models:
            members = [model_spec_member(spec, **self.member_kwargs) for spec in self.models]
        elif not self.preset:
            raise ValueError("SpecFuseLLM needs a preset, a list of models, or an ensemble")
        else:
            members = load_preset_members(self.preset, **self.member_kwargs)
        calibration = self.calibration or (preset_calibration(self.preset) if self.preset and not self.models else None)
        return SpecFuse(members, self.ensemble_config(), calibration=calibration)

    def load(self) -> "SpecFuseLLM":
        """Load the members now (otherwise the first call or ``metadata`` read does)."""
        _ = self.ensemble
        return self

    async def aload(self) -> "SpecFuseLLM":
        """:meth:`load` in a worker thread, so the event loop keeps running."""
        await asyncio.to_thread(self.load)
        return self

    @property
    def tokenizer(self) -> Callable[[str], List[int]]:
        """A ``text -> token ids`` callable in the tokens of the member that counts ``max_new_tokens``
        and usage (the first member): use it as ``Settings.tokenizer`` or
        ``TokenCountingHandler(tokenizer=llm.tokenizer)`` so LlamaIndex packs prompts in the ensemble's
        tokens instead of tiktoken's. The members load on its first call (see :meth:`load`)."""
        return _EnsembleTokenizer(self)

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in the counting member's tokens."""
        return self.ensemble.count_tokens(text)

    def describe(self) -> Dict[str, Any]:
        """The ensemble's members and settings (loads the members)."""
        return self.ensemble.describe()

    # ------------------------------------------------------------------ metadata
    @property
    def model_name(self) -> str:
        names = ",".join(self._source_names())
        if self.models or not self.preset:
            return f"specfuse[{names}]"
        return f"specfuse/{self.preset}[{names}]"

    def _member_window(self) -> int:
        if self.context_window is not None:
            return self.context_window
        return min(member.context_window for member in self.ensemble.members)

    @property
    def reserved_tokens(self) -> int:
        """Tokens a request keeps free for generation: ``max_new_tokens`` plus the ``4 *
        segment_tokens`` the core reserves for one round in every member's window."""
        return self.max_new_tokens + self.ensemble_config().round_reserve

    @property
    def metadata(self) -> LLMMetadata:
        window = self._member_window()
        available = window - self.reserved_tokens
        if available <= 0:
            raise ValueError(
                f"max_new_tokens={self.max_new_tokens} and segment_tokens={self.segment_tokens} leave no room "
                f"for a prompt in the smallest member context window ({window} tokens)"
            )
        return LLMMetadata(
            context_window=available,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            is_function_calling_model=False,
            model_name=self.model_name,
            system_role=MessageRole.SYSTEM,
        )

    def to_payload(self) -> Dict[str, Any]:
        """Observability payload of the standard LLM events. Never loads the members (so an async
        call does not load them on the event loop); ``context_window`` appears once it is known."""
        payload: Dict[str, Any] = {
            "class_name": self.class_name(),
            "model_name": self.model_name,
            "num_output": self.max_new_tokens,
            "is_chat_model": True,
            "is_function_calling_model": False,
        }
        if self.context_window is not None or self._ensemble is not None:
            payload["context_window"] = self._member_window() - self.reserved_tokens
        payload["config"] = self.ensemble_config().model_dump()
        return payload

    # ------------------------------------------------------------------ input
    def _chat_input(self, messages: Sequence[ChatMessage]) -> List[CoreMessage]:
        messages = with_system_prompt(messages, self.system_prompt)
        if self.messages_to_prompt is not generic_messages_to_prompt:
            # A user-supplied renderer: its text is sent as one user turn.
            return [{"role": "user", "content": self.messages_to_prompt(messages)}]
        return to_core_messages(messages)

    def _completion_input(self, prompt: str, formatted: bool) -> List[CoreMessage]:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        if formatted:  # already templated by LlamaIndex (system prompt included)
            return [{"role": "user", "content": prompt}]
        messages: List[CoreMessage] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": self.completion_to_prompt(prompt)})
        return messages

    def _overrides(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """Per-call keyword arguments that name ensemble settings (``max_tokens`` is an alias of
        ``max_new_tokens``; ``None`` means "keep the field"); anything else LlamaIndex passes along
        is ignored."""
        overrides = {key: value for key, value in kwargs.items() if key in _CONFIG_FIELDS and value is not None}
        if kwargs.get("max_tokens") is not None and "max_new_tokens" not in overrides:
            overrides["max_new_tokens"] = kwargs["max_tokens"]
        ignored = sorted(set(kwargs) - set(overrides) - {"max_tokens", "formatted"})
        if ignored:
            logger.debug("SpecFuseLLM ignores keyword arguments %s", ignored)
        if overrides:
            self.ensemble_config(**overrides)  # validate now, with the call's error
        return overrides

    # ------------------------------------------------------------------ running
    def _segment_event(self, segment: SegmentEvent, span_id: Optional[str]) -> None:
        dispatcher.event(SpecFuseSegmentEvent.from_segment(segment, self.model_name, span_id))

    def _run(self, core_messages: List[CoreMessage], overrides: Dict[str, Any], span_id: Optional[str]) -> Tuple[GenerationResult, List[SegmentEvent]]:
        stream = self.ensemble.stream(core_messages, self.ensemble_config(**overrides))
        segments: List[SegmentEvent] = []
        try:
            for segment in stream:
                segments.append(segment)
                self._segment_event(segment, span_id)
            return stream.result(), segments
        finally:
            stream.close()

    async def _arun(self, core_messages: List[CoreMessage], overrides: Dict[str, Any], span_id: Optional[str]) -> Tuple[GenerationResult, List[SegmentEvent]]:
        stream = await self._astart(core_messages, overrides)
        segments: List[SegmentEvent] = []
        try:
            async for segment in stream:
                segments.append(segment)
                self._segment_event(segment, span_id)
            return stream.result(), segments
        finally:
            await stream.aclose()

    async def _astart(self, core_messages: List[CoreMessage], overrides: Dict[str, Any]) -> Any:
        # Loading members and tokenizing the prompt run off the event loop.
        def start() -> Any:
            return self.ensemble.astream(core_messages, self.ensemble_config(**overrides))

        return await asyncio.to_thread(start)

    def _segments(self, core_messages: List[CoreMessage], overrides: Dict[str, Any], span_id: Optional[str]) -> Iterator[Tuple[SegmentEvent, str, Optional[GenerationResult]]]:
        """Start the request now (bad input raises at call time), then yield lazily."""
        stream = self.ensemble.stream(core_messages, self.ensemble_config(**overrides))

        def gen() -> Iterator[Tuple[SegmentEvent, str, Optional[GenerationResult]]]:
            text = ""
            try:
                for segment in stream:
                    text += segment.text
                    self._segment_event(segment, span_id)
                    result = stream.result() if segment.finish_reason is not None else None
                    yield segment, text, result
            finally:
                stream.close()

        return gen()

    async def _asegments(self, core_messages: List[CoreMessage], overrides: Dict[str, Any], span_id: Optional[str]) -> AsyncIterator[Tuple[SegmentEvent, str, Optional[GenerationResult]]]:
        stream = await self._astart(core_messages, overrides)

        async def gen() -> AsyncIterator[Tuple[SegmentEvent, str, Optional[GenerationResult]]]:
            text = ""
            try:
                async for segment in stream:
                    text += segment.text
                    self._segment_event(segment, span_id)
                    result = stream.result() if segment.finish_reason is not None else None
                    yield segment, text, result
            finally:
                await stream.aclose()

        return gen()

    # ------------------------------------------------------------------ responses
    @staticmethod
    def _final_raw(result: GenerationResult, segments: List[SegmentEvent]) -> Dict[str, Any]:
        return {
            "finish_reason": result.finish_reason,
            "usage": result.usage.model_dump(),
            "trace": result.trace.summary(),
            "segments": [segment.model_dump() for segment in segments],
        }

    @staticmethod
    def _final_kwargs(result: GenerationResult) -> Dict[str, Any]:
        usage = result.usage
        return {
            "finish_reason": result.finish_reason,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "rounds": len(result.trace.rounds),
            "wins": dict(result.trace.wins),
        }

    @staticmethod
    def _segment_raw(segment: SegmentEvent, result: Optional[GenerationResult]) -> Dict[str, Any]:
        raw: Dict[str, Any] = {"segment": segment.model_dump()}
        if result is not None:
            raw.update(finish_reason=result.finish_reason, usage=result.usage.model_dump(), trace=result.trace.summary())
        return raw

    @staticmethod
    def _segment_kwargs(segment: SegmentEvent, result: Optional[GenerationResult]) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = {
            "member": segment.member,
            "round": segment.round,
            "scores": dict(segment.scores),
            "proposers": list(segment.proposers),
            "active_members": list(segment.active_members),
            "segment": segment.segment,
            "finish_reason": segment.finish_reason,
            "faults": [fault.model_dump() for fault in segment.faults],
        }
        if result is not None:
            usage = result.usage
            kwargs.update(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
            )
        return kwargs

    def _chat_response(self, result: GenerationResult, segments: List[SegmentEvent]) -> ChatResponse:
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=result.text),
            raw=self._final_raw(result, segments),
            additional_kwargs=self._final_kwargs(result),
        )

    def _completion_response(self, result: GenerationResult, segments: List[SegmentEvent]) -> CompletionResponse:
        return CompletionResponse(
            text=result.text,
            raw=self._final_raw(result, segments),
            additional_kwargs=self._final_kwargs(result),
        )

    def _chat_chunk(self, segment: SegmentEvent, text: str, result: Optional[GenerationResult]) -> ChatResponse:
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=text),
            delta=segment.text,
            raw=self._segment_raw(segment, result),
            additional_kwargs=self._segment_kwargs(segment, result),
        )

    def _completion_chunk(self, segment: SegmentEvent, text: str, result: Optional[GenerationResult]) -> CompletionResponse:
        return CompletionResponse(
            text=text,
            delta=segment.text,
            raw=self._segment_raw(segment, result),
            additional_kwargs=self._segment_kwargs(segment, result),
        )

    # ------------------------------------------------------------------ not offered (yet)
    def structured_predict(self, output_cls: Any, prompt: Any, llm_kwargs: Optional[Dict[str, Any]] = None, **prompt_args: Any) -> Any:
        """Not offered: raises :class:`~specfuse_core.errors.UnsupportedFeatureError` at once (LlamaIndex's
        text fallback would generate a whole answer and then fail to parse it)."""
        raise _no_structured_output()

    async def astructured_predict(self, output_cls: Any, prompt: Any, llm_kwargs: Optional[Dict[str, Any]] = None, **prompt_args: Any) -> Any:
        raise _no_structured_output()

    def stream_structured_predict(self, output_cls: Any, prompt: Any, llm_kwargs: Optional[Dict[str, Any]] = None, **prompt_args: Any) -> Any:
        raise _no_structured_output()

    async def astream_structured_predict(self, output_cls: Any, prompt: Any, llm_kwargs: Optional[Dict[str, Any]] = None, **prompt_args: Any) -> Any:
        raise _no_structured_output()

    def as_structured_llm(self, output_cls: Any, **kwargs: Any) -> Any:
        raise _no_structured_output()

    # ------------------------------------------------------------------ sync endpoints
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        core, overrides = self._chat_input(messages), self._overrides(kwargs)
        result, segments = self._run(core, overrides, active_span_id.get())
        return self._chat_response(result, segments)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        core, overrides = self._completion_input(prompt, formatted), self._overrides(kwargs)
        result, segments = self._run(core, overrides, active_span_id.get())
        return self._completion_response(result, segments)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        core, overrides = self._chat_input(messages), self._overrides(kwargs)
        segments = self._segments(core, overrides, active_span_id.get())

        def gen() -> ChatResponseGen:
            with closing(segments):
                for segment, text, result in segments:
                    yield self._chat_chunk(segment, text, result)

        return gen()

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        core, overrides = self._completion_input(prompt, formatted), self._overrides(kwargs)
        segments = self._segments(core, overrides, active_span_id.get())

        def gen() -> CompletionResponseGen:
            with closing(segments):
                for segment, text, result in segments:
                    yield self._completion_chunk(segment, text, result)

        return gen()

    # ------------------------------------------------------------------ async endpoints
    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        core, overrides = self._chat_input(messages), self._overrides(kwargs)
        result, segments = await self._arun(core, overrides, active_span_id.get())
        return self._chat_response(result, segments)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        core, overrides = self._completion_input(prompt, formatted), self._overrides(kwargs)
        result, segments = await self._arun(core, overrides, active_span_id.get())
        return self._completion_response(result, segments)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        core, overrides = self._chat_input(messages), self._overrides(kwargs)
        segments = await self._asegments(core, overrides, active_span_id.get())

        async def gen() -> ChatResponseAsyncGen:
            async with aclosing(segments):
                async for segment, text, result in segments:
                    yield self._chat_chunk(segment, text, result)

        return gen()

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        core, overrides = self._completion_input(prompt, formatted), self._overrides(kwargs)
        segments = await self._asegments(core, overrides, active_span_id.get())

        async def gen() -> CompletionResponseAsyncGen:
            async with aclosing(segments):
                async for segment, text, result in segments:
                    yield self._completion_chunk(segment, text, result)

        return gen()


def _no_structured_output() -> UnsupportedFeatureError:
    return UnsupportedFeatureError(
        "SpecFuseLLM has no structured output (yet): the ensemble has no constrained decoding or function "
        "calling (metadata.is_function_calling_model is False), and parsing free text from its small members "
        "fails. Ask for JSON in the prompt and parse the reply yourself (e.g. PydanticOutputParser), "
        "expecting failures, or use a model that supports structured output"
    )


class _EnsembleTokenizer:
    """``SpecFuseLLM.tokenizer``: encodes with the counting member of the LLM's current ensemble."""

    def __init__(self, llm: "SpecFuseLLM") -> None:
        self._llm = llm

    def __call__(self, text: str) -> List[int]:
        return self._llm.ensemble.token_ids(text)

    def __repr__(self) -> str:
        return f"<tokenizer of {self._llm.model_name}>"


def _spec_name(spec: str) -> str:
    """The member name :func:`specfuse_core.loading.model_spec_member` gives a model spec."""
    path = Path(spec)
    return path.stem if path.suffix == ".gguf" else (path.name or spec)
