"""``SpecFuseLLM``: a LlamaIndex ``LLM`` backed by a local SpecFuse segment-level ensemble.

A thin adapter over :mod:`specfuse_core.integration`: chat endpoints turn segment steps into
``ChatResponse`` objects; the completion endpoints are derived from them with LlamaIndex's own
``chat_response_to_completion_response`` converters (as ``Ollama`` derives its completions).
"""

import asyncio
from contextlib import aclosing, closing
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Sequence

from llama_index.core.base.llms.generic_utils import (
    astream_chat_response_to_completion_response,
    chat_response_to_completion_response,
    messages_to_prompt as generic_messages_to_prompt,
)
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
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core import integration
from specfuse_core.integration import EnsembleSource, LazyEnsemble, SegmentStep

from .events import SpecFuseSegmentEvent
from .messages import CoreMessage, to_core_messages, tool_calls_of, with_system_prompt
from .structured import parse_partial, structured_messages
from .responses import achat_stream, chat_response, chat_stream, closing_completions

dispatcher = get_dispatcher(__name__)

_TYPED_SETTINGS = ("segment_tokens", "max_new_tokens", "temperature", "top_p", "top_k", "seed", "stop", "timeout_s")


def _setting(name: str) -> Any:
    """A typed setting: the core's default and description; the core validates the value."""
    default = integration.core_default(name)
    if isinstance(default, list):
        return Field(default_factory=list, description=integration.field_description(name))
    return Field(default=default, description=integration.field_description(name))


class SpecFuseLLM(FunctionCallingLLM):
    """A SpecFuse ensemble of local causal LMs as a LlamaIndex chat LLM.

    Every round, each member drafts ``segment_tokens`` tokens, every member scores every candidate,
    and the best candidate is appended. Streaming yields one response per accepted segment.

    Members load lazily on first use (or on :meth:`load` / :meth:`aload`) from the core's
    process-wide cache, so many ``SpecFuseLLM`` objects over the same models share one copy of the
    weights. Common settings are fields; any other ``EnsembleConfig`` field goes in
    ``additional_kwargs`` (or is given by name, which puts it there).

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
    models: Optional[List[str]] = Field(default=None, description="Model directories, hub ids or .gguf files; when given, replaces the preset.")
    member_kwargs: Dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for member loading (e.g. dtype, device).")
    context_window: Optional[int] = Field(default=None, gt=0, description="Override of the smallest member context window (lets metadata be read without loading).")
    calibration: Optional[str] = Field(default=None, description="A `specfuse calibrate` file (member weights, roles, gating lead); default: the preset's own, if it ships one.")
    additional_kwargs: Dict[str, Any] = Field(default_factory=dict, description="Any other EnsembleConfig field, e.g. {'gate_threshold': -0.3, 'roles': {...}}.")

    # -- common settings (per-call keyword arguments override them)
    segment_tokens: int = _setting("segment_tokens")
    max_new_tokens: int = _setting("max_new_tokens")
    temperature: float = _setting("temperature")
    top_p: float = _setting("top_p")
    top_k: int = _setting("top_k")
    seed: Optional[int] = _setting("seed")
    stop: List[str] = _setting("stop")
    timeout_s: Optional[float] = _setting("timeout_s")

    _ensemble: LazyEnsemble = PrivateAttr(default_factory=LazyEnsemble)

    def __init__(self, ensemble: Optional[SpecFuse] = None, **data: Any) -> None:
        """``ensemble``: an already-built :class:`specfuse_core.SpecFuse` whose members to use
        (its weights are shared; this LLM's fields still set each request's configuration).
        See also :meth:`from_ensemble`."""
        if ensemble is not None:
            data.setdefault("preset", None)
        super().__init__(**data)
        if ensemble is not None:
            pinned = SpecFuse(ensemble.members, self.ensemble_config(), calibration=self.calibration or ensemble.calibration)
            self._ensemble = LazyEnsemble(pinned)
        elif not self.models and not self.preset:
            raise ValueError("SpecFuseLLM needs a preset, a list of models, or an ensemble")
        else:  # an unknown preset, a wrong path or an uncached hub id fails here, not at the first call
            self._source.check_exists()

    @model_validator(mode="before")
    @classmethod
    def _collect_additional_kwargs(cls, values: Any) -> Any:
        """Any EnsembleConfig field given by name lands in ``additional_kwargs``."""
        return integration.route_config_keywords(dict(values), cls.model_fields, into="additional_kwargs") if isinstance(values, dict) else values

    @model_validator(mode="after")
    def _check_settings(self) -> "SpecFuseLLM":
        self._source.check_shape()
        integration.check_config_dict(self.additional_kwargs, "additional_kwargs")
        self.ensemble_config()  # every decoding setting is valid together
        return self

    @classmethod
    def class_name(cls) -> str:
        return "SpecFuseLLM"

    @classmethod
    def from_ensemble(cls, ensemble: SpecFuse, **kwargs: Any) -> "SpecFuseLLM":
        """An LLM over an existing ensemble's members, starting from that ensemble's configuration."""
        return cls(ensemble=ensemble, **{**ensemble.config.model_dump(exclude_defaults=True), **kwargs})

    # ------------------------------------------------------------------ ensemble
    @property
    def _source(self) -> EnsembleSource:
        return EnsembleSource(self.preset, tuple(self.models) if self.models is not None else None, self.member_kwargs, self.calibration)

    def ensemble_config(self, **overrides: Any) -> EnsembleConfig:
        """The validated core configuration of a request: the fields, then per-call overrides."""
        return integration.request_config({name: getattr(self, name) for name in _TYPED_SETTINGS}, self.additional_kwargs, overrides)

    @property
    def is_loaded(self) -> bool:
        return self._ensemble.current(self._source) is not None

    @property
    def ensemble(self) -> SpecFuse:
        """The underlying :class:`specfuse_core.SpecFuse` (loads the members on first access)."""
        return self._ensemble.get(self._source, self.ensemble_config())

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
        and usage (``counting_member``, default the first): use it
        as ``Settings.tokenizer`` or ``TokenCountingHandler(tokenizer=llm.tokenizer)`` so LlamaIndex packs prompts in the ensemble's
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
        """``specfuse:<preset>``, or ``specfuse:<member>+<member>...`` (the name every adapter reports)."""
        return self._ensemble.model_name(self._source)

    def _member_window(self) -> int:
        if self.context_window is not None:
            return self.context_window
        return min(member.context_window for member in self.ensemble.members)

    @property
    def reserved_tokens(self) -> int:
        """Tokens a request keeps free for generation: ``max_new_tokens`` plus the ``4 *
        segment_tokens`` the core reserves for one round in every member's window."""
        config = self.ensemble_config()
        return config.max_new_tokens + config.round_reserve

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
            context_window=available, num_output=self.max_new_tokens, is_chat_model=True,
            is_function_calling_model=True, model_name=self.model_name, system_role=MessageRole.SYSTEM,
        )

    def to_payload(self) -> Dict[str, Any]:
        """Observability payload of the standard LLM events. Never loads the members (so an async
        call does not load them on the event loop); ``context_window`` appears once it is known."""
        payload: Dict[str, Any] = {
            "class_name": self.class_name(), "model_name": self.model_name, "num_output": self.max_new_tokens,
            "is_chat_model": True, "is_function_calling_model": True,
        }
        if self.context_window is not None or self.is_loaded:
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
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + [{"role": "user", "content": self.completion_to_prompt(prompt)}]

    def _config(self, kwargs: Dict[str, Any]) -> EnsembleConfig:
        """A call's configuration (see :func:`specfuse_core.integration.split_call_arguments`: ``max_tokens``
        is an alias of ``max_new_tokens``, ``None`` keeps the field, call stops add to the field's,
        unknown arguments are refused)."""
        return self._request(kwargs)[0]

    def _request(self, kwargs: Dict[str, Any]) -> "tuple[EnsembleConfig, Dict[str, Any]]":
        """The configuration and the output arguments (response_format, tools, tool_choice) of a call."""
        call = integration.split_call_arguments(kwargs, model=self.model_name, adapter="SpecFuseLLM")
        fields = {name: getattr(self, name) for name in _TYPED_SETTINGS}
        return integration.request_config(fields, self.additional_kwargs, call.overrides, stop=call.stop), call.output

    # ------------------------------------------------------------------ running (every endpoint goes through these)
    def _steps(self, core: List[CoreMessage], kwargs: Dict[str, Any]) -> Iterator[SegmentStep]:
        """Start the request now (bad input raises at call time), then yield segments lazily."""
        config, output = self._request(kwargs)
        span_id, stream = active_span_id.get(), integration.open_stream(self.ensemble, core, config, output)

        def gen() -> Iterator[SegmentStep]:
            with closing(integration.segment_steps(stream)) as steps:
                for step in steps:
                    dispatcher.event(SpecFuseSegmentEvent.from_step(step, self.model_name, span_id))
                    yield step

        return gen()

    async def _asteps(self, core: List[CoreMessage], kwargs: Dict[str, Any]) -> AsyncIterator[SegmentStep]:
        span_id, (config, output) = active_span_id.get(), self._request(kwargs)
        stream = await integration.aopen_stream(self._ensemble, self._source, core, config, output)

        async def gen() -> AsyncIterator[SegmentStep]:
            async with aclosing(integration.asegment_steps(stream)) as steps:
                async for step in steps:
                    dispatcher.event(SpecFuseSegmentEvent.from_step(step, self.model_name, span_id))
                    yield step

        return gen()

    def _stream_chat(self, core: List[CoreMessage], kwargs: Dict[str, Any]) -> ChatResponseGen:
        return chat_stream(self._steps(core, kwargs))

    async def _astream_chat(self, core: List[CoreMessage], kwargs: Dict[str, Any]) -> ChatResponseAsyncGen:
        return achat_stream(await self._asteps(core, kwargs))

    # ------------------------------------------------------------------ endpoints: chat, and completions derived from it
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return chat_response(list(self._steps(self._chat_input(messages), kwargs)))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        steps = list(self._steps(self._completion_input(prompt, formatted), kwargs))
        return chat_response_to_completion_response(chat_response(steps))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(self._chat_input(messages), kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return closing_completions(self._stream_chat(self._completion_input(prompt, formatted), kwargs))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return chat_response([step async for step in await self._asteps(self._chat_input(messages), kwargs)])

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        steps = [step async for step in await self._asteps(self._completion_input(prompt, formatted), kwargs)]
        return chat_response_to_completion_response(chat_response(steps))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return await self._astream_chat(self._chat_input(messages), kwargs)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        return astream_chat_response_to_completion_response(await self._astream_chat(self._completion_input(prompt, formatted), kwargs))

    # ------------------------------------------------------------------ function calling (constrained decoding in the core)
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: Optional[Any] = None,
        chat_history: Optional[List[ChatMessage]] = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> Dict[str, Any]:
        """The chat arguments for a call with tools: OpenAI tool dicts, and ``tool_choice``
        (``"required"`` when ``tool_required``); several calls only with ``allow_parallel_tool_calls``."""
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg)
        specs = [tool.metadata.to_openai_tool() for tool in tools]
        choice = tool_choice if tool_choice is not None else ("required" if tool_required else "auto")
        return {
            "messages": messages, "tools": specs or None, "tool_choice": choice if specs else None,
            "parallel_tool_calls": allow_parallel_tool_calls if specs else None, **kwargs,
        }

    def get_tool_calls_from_response(self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any) -> List[ToolSelection]:
        """The parsed calls of a response (arguments already validated against each tool's schema)."""
        calls = tool_calls_of(response.message)
        if not calls and error_on_no_tool_call:
            raise ValueError(f"expected at least one tool call, got none; the answer was: {response.message.content!r}")
        return [ToolSelection(tool_id=c["id"], tool_name=c["name"], tool_kwargs=c["arguments"]) for c in calls]

    # ------------------------------------------------------------------ structured output: the reply is constrained to the class's schema
    def structured_predict(self, output_cls: Any, prompt: Any, llm_kwargs: Optional[Dict[str, Any]] = None, **prompt_args: Any) -> Any:
        response = self.chat(structured_messages(self, prompt, prompt_args), response_format=output_cls, **(llm_kwargs or {}))
        return output_cls.model_validate_json(response.message.content or "")

    async def astructured_predict(self, output_cls: Any, prompt: Any, llm_kwargs: Optional[Dict[str, Any]] = None, **prompt_args: Any) -> Any:
        response = await self.achat(structured_messages(self, prompt, prompt_args), response_format=output_cls, **(llm_kwargs or {}))
        return output_cls.model_validate_json(response.message.content or "")

    def stream_structured_predict(self, output_cls: Any, prompt: Any, llm_kwargs: Optional[Dict[str, Any]] = None, **prompt_args: Any) -> Any:
        """Partial objects as segments land (those that validate so far), then the whole object."""
        chunks = self.stream_chat(structured_messages(self, prompt, prompt_args), response_format=output_cls, **(llm_kwargs or {}))

        def gen() -> Iterator[Any]:
            with closing(chunks):
                for chunk in chunks:
                    partial = parse_partial(output_cls, chunk.message.content or "")
                    if partial is not None:
                        yield partial

        return gen()

    async def astream_structured_predict(self, output_cls: Any, prompt: Any, llm_kwargs: Optional[Dict[str, Any]] = None, **prompt_args: Any) -> Any:
        chunks = await self.astream_chat(structured_messages(self, prompt, prompt_args), response_format=output_cls, **(llm_kwargs or {}))

        async def gen() -> AsyncIterator[Any]:
            async with aclosing(chunks):
                async for chunk in chunks:
                    partial = parse_partial(output_cls, chunk.message.content or "")
                    if partial is not None:
                        yield partial

        return gen()


class _EnsembleTokenizer:
    """``SpecFuseLLM.tokenizer``: encodes with the counting member of the LLM's current ensemble."""

    def __init__(self, llm: "SpecFuseLLM") -> None:
        self._llm = llm

    def __call__(self, text: str) -> List[int]:
        return self._llm.ensemble.token_ids(text)

    def __repr__(self) -> str:
        return f"<tokenizer of {self._llm.model_name}>"
