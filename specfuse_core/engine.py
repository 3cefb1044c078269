"""The public entry point: :class:`SpecFuse`, an ensemble of members with generate/stream, sync and async."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .calibration import Calibration
from .config import EnsembleConfig
from .errors import DuplicateMemberError, UnknownMemberNameError
from .backend import MemberBackend
from .messages import Conversation, normalize_conversation, with_tools
from .output import OutputSpec
from .openmp import release_openmp_workers
from .scheduler import RoundScheduler
from .shared_drafts import share_drafts
from .results import GenerationResult, SegmentEvent
from .rounds import EnsembleRequest
from .scoring import HedgeWeights


PRESET_CALIBRATION: Any = object()  # sentinel: the preset's own calibration

#: async rounds get threads for a full batch plus this many rounds queued behind it
SPARE_ROUND_THREADS = 4


def check_member_names(config: EnsembleConfig, names: Sequence[str]) -> None:
    """Settings that name members must name this ensemble's members (a typo would silently do nothing)."""
    named = {
        "member_weights": list(config.member_weights),
        "roles": list(config.roles),
        "lead_member": [config.lead_member] if config.lead_member else [],
        "counting_member": [config.counting_member] if config.counting_member else [],
    }
    for setting, given in named.items():
        unknown = [n for n in given if n not in names]
        if unknown:
            raise UnknownMemberNameError(f"{setting} names {', '.join(map(repr, unknown))}, not a member of this ensemble; members: {', '.join(names)}")


class SpecFuse:
    """Segment-level ensemble of local causal LMs.

    Concurrent requests run their rounds together (up to ``max_batch_requests``, first come first
    served): local members draft for all of them in shared forward passes, each request keeps its own
    caches, and its output is the one it gets alone. A member that
    raises is taken out of that request only (reported in ``trace.faults``); see docs/reliability.md.
    """

    def __init__(
        self, members: Sequence[MemberBackend], config: EnsembleConfig | None = None, calibration: "Calibration | str | Path | None" = None
    ) -> None:
        """``calibration``: a :class:`Calibration` or its JSON file (``specfuse calibrate``): fills the trust
        settings (member_weights, roles, lead_member, gate_threshold) that a request leaves unset."""
        members = list(members)
        if not members:
            raise ValueError("an ensemble needs at least one member")
        names = [m.name for m in members]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DuplicateMemberError(f"member names must be unique; repeated: {', '.join(duplicates)}")
        self.members = members
        self.calibration = Calibration.load(calibration) if isinstance(calibration, (str, Path)) else calibration
        config = config or EnsembleConfig()
        # the trust fields the calibration (not the caller) set: a router may re-fit these per prompt
        self._calibrated_fields = {k for k in self.calibration.config_fields() if not getattr(config, k)} if self.calibration else set()
        self._own_config = config  # before the calibration: each request is calibrated from what it sets itself
        self.config = self._calibrated(config)
        # rounds of concurrent requests run together, in arrival order (docs/reliability.md)
        self._rounds = RoundScheduler(
            self.config.max_batch_requests, share_drafts, pool_scoring=self.config.pooled_scoring, pool_drafts=self.config.pooled_drafting
        )
        self._round_threads: ThreadPoolExecutor | None = None  # async rounds' workers, made on first use
        self._round_threads_lock = threading.Lock()
        # kept across requests if persist_weights; starts from the calibrated prior weights
        self._weights = HedgeWeights(names, self.config.hedge_learning_rate, self.config.member_weights)
        release_openmp_workers()  # loading computed in this thread; requests may run in others (:mod:`.openmp`)

    @classmethod
    def from_preset(
        cls,
        name: str = "tiny",
        config: EnsembleConfig | None = None,
        extra_members: Sequence[Any] = (),
        calibration: "Calibration | str | Path | None" = PRESET_CALIBRATION,
        **member_kwargs: Any,
    ) -> "SpecFuse":
        """Load a packaged ensemble (see :mod:`specfuse_core.presets`); ``extra_members`` (e.g. remote
        members, docs/scaling.md) join after the preset's own. ``calibration``: by default the one the
        preset ships (if any); ``None`` for none, or your own (a :class:`Calibration` or its file)."""
        from .loading import load_preset_members
        from .presets import preset_calibration

        if calibration is PRESET_CALIBRATION:
            calibration = preset_calibration(name)
        return cls(load_preset_members(name, **member_kwargs) + list(extra_members), config=config, calibration=calibration)

    def _calibrated(self, config: EnsembleConfig) -> EnsembleConfig:
        """``config`` with the calibration's trust settings where it leaves them unset, checked against the members."""
        if self.calibration is not None:
            config = self.calibration.apply(config)
        check_member_names(config, self.member_names)
        return config

    def _routed(self, config: EnsembleConfig, conversation: Conversation) -> EnsembleConfig:
        """Trust re-fitted for this prompt by the calibration's router. Weights, roles and lead are
        re-fitted together or not at all: a request that sets any of them itself keeps its own."""
        routed = self._calibrated_fields & {"member_weights", "roles", "lead_member"}
        if self.calibration is None or self.calibration.router is None or not routed:
            return config
        # unset (an adapter's request config) or the set-wide calibrated value: the request chose no trust of its own
        if any(getattr(config, k) and getattr(config, k) != getattr(self.config, k) for k in routed):
            return config
        question = next((str(m["content"]) for m in reversed(conversation) if m["role"] == "user"), "")
        local = self.calibration.for_prompt(question)
        if local is self.calibration:
            return config
        return config.with_overrides(**{k: v for k, v in local.config_fields().items() if k in routed})

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def weights(self) -> dict[str, float]:
        """Learned hedge weights (meaningful with ``weighting='hedge'`` and ``persist_weights=True``)."""
        return self._weights.snapshot()

    @property
    def batching(self) -> dict[str, float]:
        """Counters of the round scheduler: ``batches`` run, ``batched_rounds`` (rounds that ran
        alongside another request's, sharing drafting passes), ``shared_scoring_passes`` (pooled
        scoring passes that served several requests), ``shared_round_drafts`` (members whose drafts
        inside rounds ran in shared passes, counted per wave), and the seconds spent in shared drafting
        (``prepare_seconds``), in the requests' own rounds (``step_seconds``) and, within those, in
        pooled scoring passes (``pooled_scoring_seconds``) and pooled drafts (``pooled_drafting_seconds``)."""
        return self._rounds.stats()

    # ------------------------------------------------------------------ token counting
    @property
    def counting_member(self) -> MemberBackend:
        """The member whose tokenizer counts ``max_new_tokens`` and usage: ``counting_member``, else the
        first member (one member for every prompt: counts must not depend on routing)."""
        name = self.config.counting_member
        return next((m for m in self.members if m.name == name), self.members[0])

    def token_ids(self, text: str) -> list[int]:
        """``text`` in the counting member's tokens (special-token spellings stay text). No model work."""
        return list(self.counting_member.encode(text))

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in the counting member's tokens, as ``usage.completion_tokens`` counts."""
        return len(self.token_ids(text))

    def count_prompt_tokens(self, messages: Any, tools: Any = None) -> int:
        """Tokens the counting member's prompt takes for ``messages`` (a string or role/content
        messages), with what its chat template or the plain format adds: what ``usage.prompt_tokens``
        reports for that input. Part of a conversation counts too (no user message needed); an empty
        list is 0 tokens."""
        conversation = normalize_conversation(messages, partial=True)
        if tools:  # the tools as the counting member's prompt shows them
            from .constrained import tool_specs_from

            conversation = with_tools(conversation, tool_specs_from(tools))
        return len(self.counting_member.prompt_ids(conversation)) if conversation else 0

    def describe(self) -> dict[str, Any]:
        """Serialisable identity of the ensemble: members and settings."""
        return {"members": [m.describe() for m in self.members], "config": self.config.model_dump()}

    # ------------------------------------------------------------------ requests
    def start(
        self,
        messages: Any,
        config: EnsembleConfig | None = None,
        *,
        response_format: Any = None,
        tools: Any = None,
        tool_choice: Any = None,
        parallel_tool_calls: bool | None = None,
        **overrides: Any,
    ) -> EnsembleRequest:
        """Validate the input and open a request (no model work yet); drive it with ``step()``.

        ``config`` replaces the ensemble's settings for this request only; ``overrides`` change single
        fields on top (``None`` values are ignored). ``response_format`` (a pydantic model class, a JSON
        Schema, ``{"type": "json_object"}``, a regex or Lark grammar) or ``tools`` (OpenAI-style
        function schemas or pydantic classes) with ``tool_choice`` (``auto``, ``required``, ``none``, a
        tool name) and ``parallel_tool_calls`` (default: one call per answer) constrain every member's drafts (docs/structured_output.md); the result then carries
        ``parsed`` or ``tool_calls``, or the request fails with ``StructuredOutputError``."""
        self._rounds.announce()  # a batch about to start waits briefly for this request's first round
        request = None
        try:
            request = self._open(messages, config, response_format, tools, tool_choice, parallel_tool_calls, overrides)
            return request
        finally:
            self._rounds.arrived(request)

    def _open(self, messages: Any, config: EnsembleConfig | None, response_format: Any, tools: Any, tool_choice: Any,
              parallel_tool_calls: bool | None, overrides: dict[str, Any]) -> EnsembleRequest:
        config = (config or self._own_config).with_overrides(**overrides)
        output = OutputSpec.build(response_format, tools, tool_choice, parallel_tool_calls=parallel_tool_calls)
        conversation = normalize_conversation(messages)
        config = self._calibrated(self._routed(config, conversation))
        if output is not None:
            conversation = with_tools(conversation, output.tools)
        if config.weighting == "hedge" and config.persist_weights:
            hedge = self._weights
            hedge.learning_rate = config.hedge_learning_rate
        else:
            hedge = HedgeWeights(self.member_names, config.hedge_learning_rate, config.member_weights)
        counter = config.counting_member or self.counting_member.name
        return EnsembleRequest(self.members, conversation, config, hedge, output, counter=counter)

    async def astep(self, request: EnsembleRequest) -> SegmentEvent | None:
        """``step`` in one of the ensemble's round threads, so the event loop never blocks. Why not
        ``asyncio.to_thread``: the loop's default pool has cores + 4 threads (6 on two cores), and each
        waiting round holds one, so it capped batches of async requests below ``max_batch_requests``
        and kept the application's own ``to_thread`` calls waiting behind them."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._round_pool(), context.run, self.step, request)

    def _round_pool(self) -> ThreadPoolExecutor:
        with self._round_threads_lock:
            if self._round_threads is None:
                self._round_threads = ThreadPoolExecutor(
                    self._rounds.max_batch + SPARE_ROUND_THREADS, thread_name_prefix="specfuse-round")
            return self._round_threads

    def step(self, request: EnsembleRequest) -> SegmentEvent | None:
        if request.done:  # closed or abandoned: do not queue behind other requests' rounds to learn that
            return None
        return self._rounds.run(request)

    def stream(self, messages: Any, config: EnsembleConfig | None = None, **overrides: Any) -> "GenerationStream":
        """Iterate accepted segments as they land. Input is validated now, not on the first ``next``."""
        return GenerationStream(self, self.start(messages, config, **overrides))

    def generate(self, messages: Any, config: EnsembleConfig | None = None, **overrides: Any) -> GenerationResult:
        stream = self.stream(messages, config, **overrides)
        for _ in stream:
            pass
        return stream.result()

    def astream(self, messages: Any, config: EnsembleConfig | None = None, **overrides: Any) -> "AsyncGenerationStream":
        """Async iteration; each round runs in a worker thread, so the event loop never blocks."""
        return AsyncGenerationStream(self, self.start(messages, config, **overrides))

    async def agenerate(self, messages: Any, config: EnsembleConfig | None = None, **overrides: Any) -> GenerationResult:
        stream = self.astream(messages, config, **overrides)
        async for _ in stream:
            pass
        return stream.result()


class GenerationStream(Iterator[SegmentEvent]):
    """Segments of one request. ``result()`` gives text, finish reason, usage and trace at the end;
    ``close()`` (or leaving a ``for`` loop early and dropping the stream) frees the request's caches."""

    def __init__(self, ensemble: SpecFuse, request: EnsembleRequest) -> None:
        self.ensemble = ensemble
        self.request = request

    def __iter__(self) -> "GenerationStream":
        return self

    def __next__(self) -> SegmentEvent:
        event = self.ensemble.step(self.request)
        if event is None:
            raise StopIteration
        return event

    def result(self) -> GenerationResult:
        return self.request.result()

    def close(self) -> None:
        self.request.close()

    def __enter__(self) -> "GenerationStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.request.close()


class AsyncGenerationStream(AsyncIterator[SegmentEvent]):
    def __init__(self, ensemble: SpecFuse, request: EnsembleRequest) -> None:
        self.ensemble = ensemble
        self.request = request

    def __aiter__(self) -> "AsyncGenerationStream":
        return self

    async def __anext__(self) -> SegmentEvent:
        try:
            event = await self.ensemble.astep(self.request)
        except asyncio.CancelledError:
            self.request.close()
            raise
        if event is None:
            raise StopAsyncIteration
        return event

    def result(self) -> GenerationResult:
        return self.request.result()

    async def aclose(self) -> None:
        self.request.close()

    def __del__(self) -> None:
        self.request.close()
