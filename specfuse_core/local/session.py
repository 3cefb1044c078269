"""A local member inside one request: its KV cache, drafting token by token, packed scoring
(:mod:`.packed`) and reusing the winner's keys/values on accept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..backend import Candidate, Draft, TextSession, TokenStatistic, token_statistic
from ..text_align import REPLACEMENT_CHAR
from .kv_cache import common_prefix_length, crop_to, new_cache, splice
from .rows import decode_rows
from .packed import PackedPass, block_logprobs, packed_mask, plan_packed_pass
from .sampling import TokenChooser

if TYPE_CHECKING:
    from ..constrained import MemberConstraint, ResponseFormat
    from .member import Member


@dataclass
class _VerifiedBlocks:
    """Where the last score() left each candidate's keys/values in the cache, for reuse on accept."""

    context_ids: list[int]
    full_ids: list[list[int]]  # each candidate's re-tokenised response + candidate
    keep: list[int]  # context prefix each candidate's block attends to
    starts: list[int]  # cache offset of each block
    inputs: list[list[int]]  # tokens fed for each block


UTF8_REPICKS = 8  # picks per drafted token before a stray byte is left to the cut at the draft's end


@dataclass
class _DraftRecord:
    """What a draft leaves behind for scoring its own candidate without re-feeding it."""

    response: str  # the response the draft continued
    context: list[int]
    context_logprobs: torch.Tensor  # next-token log-probs at the end of the context
    tokens: list[int] = field(default_factory=list)  # every drafted token (its keys/values are cached)
    kept: list[int] = field(default_factory=list)  # those left after holding back partial characters
    token_logprobs: list[float] = field(default_factory=list)
    end_logprob: float | None = None  # log-prob of the end-of-turn token where the draft stopped
    text: str = ""
    finished: bool = False
    max_tokens: int = 0
    pending: int | None = None  # drafted, not fed yet
    utf8_pending: bytes = b""  # the bytes of a character the drafted tokens have begun, not finished

    def own_logprobs(self, count: int, finished: bool) -> list[float]:
        picked = self.token_logprobs[: count - (1 if finished else 0)]
        return picked + [self.end_logprob] if finished else picked


@dataclass
class PrefillJob:
    """A draft's prefill, planned before its pass runs alone or shared with other requests
    (:meth:`LocalSession.plan_prefill`)."""

    response: str
    max_tokens: int
    context: list[int]
    plan: PackedPass  # the context tail to feed; ``rows`` holds its last position


@dataclass
class ScoreJob:
    """One planned scoring pass of a session (see :meth:`LocalSession.plan_score`)."""

    candidates: Sequence[Candidate]
    statistic: TokenStatistic
    context: list[int]
    full_ids: list[list[int]]
    keeps: list[int]
    targets: list[list[int]]
    inputs: list[list[int]]
    own: int | None  # the candidate scored from this member's own draft, not fed
    plan: PackedPass
    mask: Any  # the plan's attention mask (None when nothing is fed)


@dataclass
class _SharedDraft:
    """A draft computed in a batched step for this session, waiting for the round to ask for it."""

    key: tuple[str, int, bool]  # (response, max_tokens, align) of the draft call it answers
    draft: Draft | None
    error: Exception | None

    def outcome(self) -> Draft:
        if self.error is not None:
            raise self.error
        assert self.draft is not None
        return self.draft


class LocalSession(TextSession):
    member: "Member"

    def __init__(self, member: "Member", prompt_ids: list[int], chooser: TokenChooser, no_repeat_ngram_size: int = 0) -> None:
        super().__init__(member, prompt_ids)
        self.chooser = chooser
        self.cache = new_cache()
        self.cached_ids: list[int] = []  # tokens whose keys/values the cache holds (a prefix of it)
        self._verified: _VerifiedBlocks | None = None
        self._draft_record: _DraftRecord | None = None
        self.constraint: MemberConstraint | None = None  # this request's grammar state (structured output, tools)
        self._drafting: _DraftRecord | None = None  # the draft in progress (between begin_draft and end_draft)
        self._shared: _SharedDraft | None = None
        self.no_repeat_ngram_size = no_repeat_ngram_size  # 0: off (see EnsembleConfig)

    def constrain(self, fmt: "ResponseFormat") -> bool:
        """Draft under ``fmt`` from now on: a matcher over this member's own tokenizer (compiled once
        per tokenizer and format, process-wide); its end-of-turn tokens end the grammar."""
        from ..constrained import MemberConstraint, shared_grammar_cache

        member = self.member
        matcher = shared_grammar_cache().matcher(member.tokenizer, fmt, sorted(member.stop_token_ids), vocab_size=member.vocab_size)
        self.constraint = MemberConstraint(matcher, member.encode, member.name)
        return True

    # ------------------------------------------------------------------ model calls
    def _forward(self, ids: Sequence[int], **kwargs: Any) -> torch.Tensor:
        member = self.member
        input_ids = torch.tensor([list(ids)], dtype=torch.long, device=member.device)
        with torch.inference_mode():
            out = member.model(input_ids=input_ids, use_cache=True, **{member._cache_kwarg: self.cache}, **kwargs)
        self.counters.forward_calls += 1
        return out.logits[0]

    def _sync(self, target: list[int]) -> torch.Tensor:
        """Bring the cache to ``target`` (reusing the longest common prefix) and return next-token logits."""
        keep = min(common_prefix_length(self.cached_ids, target), len(target) - 1)
        crop_to(self.cache, keep)
        logits = self._forward(target[keep:], logits_to_keep=1)
        self.cached_ids = list(target)
        return logits[-1]

    def _context(self, response: str) -> list[int]:
        """This member's tokens for ``prompt + response``."""
        return self.prompt_ids + self._view(response)

    # ------------------------------------------------------------------ draft
    def next_token(self, logits: torch.Tensor) -> int:
        """One next-token logits row of this request -> its next draft token: the grammar's mask (in
        place), then the chooser; the grammar state advances by the token (end-of-turn tokens end it
        instead). The one place a token is picked, alone or in a batched step, so per-request rules
        apply to both: call it exactly once per drafted token."""
        constraint = self.constraint
        if constraint is not None:
            with torch.inference_mode():  # the logits are inference tensors: masked in place, no copy
                constraint.mask_logits(logits)
        if self.no_repeat_ngram_size and self._drafting is not None:
            record = self._drafting
            banned = repeating_tokens(record.context[len(self.prompt_ids) :] + record.tokens, self.no_repeat_ngram_size)
            if banned:
                with torch.inference_mode():
                    ban_unless_nothing_left(logits, banned)
        token = self._keep_utf8(logits, self.chooser.choose(logits))
        if constraint is not None and token not in self.member.stop_token_ids:
            constraint.accept_token(token)
        return token

    def _keep_utf8(self, logits: torch.Tensor, token: int) -> int:
        """``token``, or while it would break the draft's UTF-8 for good (a stray byte), the chooser's
        next pick without it (a few times at most; what is left is cut by :meth:`_complete_characters`)."""
        record, spelling = self._drafting, self.member.tokens.token_bytes
        if record is None or spelling.scheme is None:
            return token
        for attempt in range(UTF8_REPICKS):
            if token in self.member.stop_token_ids:
                return token
            pending = spelling.follows(record.utf8_pending, token)
            if pending is not None:
                record.utf8_pending = pending
                return token
            with torch.inference_mode():
                ban_unless_nothing_left(logits, [token])
                if attempt == 0:  # most tokens cannot follow a begun character: screen the row once
                    ban_unless_nothing_left(logits, ~spelling.allowed_after(record.utf8_pending, logits.shape[-1]))
            token = self.chooser.choose(logits)
        return token

    def draft(self, response: str, max_tokens: int, align: bool = True) -> Draft:
        shared, self._shared = self._shared, None
        if shared is not None and shared.key == (response, max_tokens, align):
            return shared.outcome()
        self.begin_draft(response, max_tokens)
        member = self.member
        while (token := self.pending_token) is not None:
            if member.row_invariant and member.decode_block is not None:  # padded: the bits of a batched step
                logits = decode_rows(member.model, member._cache_kwarg, [self.cache], [token], [len(self.cached_ids)], member.decode_block)[0]
            else:
                logits = self._forward([token], logits_to_keep=1)[-1]
                self.counters.forward_calls -= 1  # counted by feed_draft
            self.feed_draft(logits)
        return self.end_draft(align)

    def begin_draft(self, response: str, max_tokens: int) -> None:
        """Sync the cache to ``prompt + response`` (a per-request prefill) and pick the first token."""
        self.prefill_alone(self.plan_prefill(response, max_tokens))

    def prefill_alone(self, job: "PrefillJob") -> None:
        """Feed ``job`` in this session's own pass and pick the first draft token."""
        self.finish_prefill(job, self._forward(job.plan.ids, logits_to_keep=1)[-1])

    def plan_prefill(self, response: str, max_tokens: int) -> "PrefillJob":
        """:meth:`begin_draft` up to its forward pass, which may be shared with other requests
        (:func:`.batched_draft.draft_together`): the cache is cropped to where the prefill starts, and
        ``job.plan`` holds the tokens and positions to feed (at least one, so there is a next-token row)."""
        context = self._forget_for_draft(response)
        keep = min(common_prefix_length(self.cached_ids, context), len(context) - 1)
        crop_to(self.cache, keep)
        self.cached_ids = context[:keep]
        plan = plan_packed_pass(len(context), [], [], keep, 0, context[keep:], None)
        plan.rows = [len(plan.ids) - 1]  # the next-token row after the context
        return PrefillJob(response, max_tokens, context, plan)

    def finish_prefill(self, job: "PrefillJob", logits: torch.Tensor) -> None:
        """``job``'s tokens were fed (``logits``: its next-token row): pick the first draft token. The
        pass is counted by whoever ran it."""
        self.cached_ids = list(job.context)
        self._drafting = record = _DraftRecord(job.response, job.context, torch.log_softmax(logits.float(), -1), max_tokens=job.max_tokens)
        self._take(logits, record.context_logprobs)

    def _forget_for_draft(self, response: str) -> list[int]:
        """A new draft drops the last round's verified blocks and draft; returns its context."""
        self._drop_verified()
        self._draft_record = None
        if self.constraint is not None:
            self.constraint.sync_to(response)  # forget the last draft's tokens (a no-op after accept)
        return self._context(response)

    @property
    def pending_token(self) -> int | None:
        """The drafted token whose decode step is due (its keys/values are not cached yet), or None
        once the draft is over."""
        record = self._drafting
        return record.pending if record is not None else None

    def feed_draft(self, logits: torch.Tensor) -> None:
        """The decode step of :attr:`pending_token` ran (``logits``: its next-token row): go on."""
        record = self._drafting
        self.counters.forward_calls += 1
        self.cached_ids.append(record.pending)
        self._take(logits, torch.log_softmax(logits.float(), -1))

    def _take(self, logits: torch.Tensor, logprobs: torch.Tensor) -> None:
        record = self._drafting
        record.pending = None
        token = self.next_token(logits)
        if token in self.member.stop_token_ids:
            record.finished = True
            if self.member.end_of_turn_id is not None:
                record.end_logprob = float(logprobs[self.member.end_of_turn_id])
            return
        record.tokens.append(token)
        record.token_logprobs.append(float(logprobs[token]))
        if len(record.tokens) < record.max_tokens:
            record.pending = token

    def end_draft(self, align: bool) -> Draft:
        """The finished draft as aligned text; its record stays for scoring and accepting it."""
        record, self._drafting = self._drafting, None
        self.counters.drafted_tokens += len(record.tokens)
        text, tokens, finished = self._complete_characters(record.context, list(record.tokens), record.finished)
        text, finished = self._finish_draft(text, finished, record.response, align)
        record.kept, record.text, record.finished = tokens, text, finished
        self._draft_record = record
        own = record.token_logprobs[: len(tokens)] + ([record.end_logprob] if finished and record.end_logprob is not None else [])
        confidence = sum(own) / len(own) if own else None
        return Draft(text=text, finished=finished, tokens_drafted=len(record.tokens), mean_logprob=confidence)

    def hold_shared(self, key: tuple[str, int, bool], draft: Draft | None = None, error: Exception | None = None) -> None:
        """Keep the outcome of a draft run in a batched step; the round's ``draft`` call with the same
        arguments returns it (or raises its error, so a fault stays this request's)."""
        self._shared = _SharedDraft(key, draft, error)

    def _complete_characters(self, context: list[int], tokens: list[int], finished: bool) -> tuple[str, list[int], bool]:
        """The draft's tokens that decode to whole characters, their text, and whether it is still
        finished. Tokens that end in the middle of a UTF-8 character are held back (the next round may
        complete it); a byte sequence no later token can mend (a sampled stray continuation byte) ends
        the draft before it, unfinished (as :func:`..text_align.before_broken_bytes` does for text)."""
        decode = self.member.tokens.continuation
        text = decode(context, tokens)
        while tokens and text.endswith(REPLACEMENT_CHAR):
            tokens = tokens[:-1]
            text = decode(context, tokens)
        if REPLACEMENT_CHAR not in text:
            return text, tokens, finished
        clean = 0  # the longest run of tokens whose text has no U+FFFD, up to the first that breaks for good
        for count in range(1, len(tokens) + 1):
            piece = decode(context, tokens[:count])
            if REPLACEMENT_CHAR in piece.rstrip(REPLACEMENT_CHAR):
                break
            if REPLACEMENT_CHAR not in piece:
                clean = count
        return decode(context, tokens[:clean]), tokens[:clean], False

    # ------------------------------------------------------------------ score
    def score(self, response: str, candidates: Sequence[Candidate], statistic: TokenStatistic = "mean") -> list[float]:
        from ..pooled_scoring import current_pool

        pool = current_pool()
        # In a batch of rounds the pass joins other requests' (rows as needed: like drafting's default
        # mode, bits may follow the batch; a batch-invariant member, decode_block set, scores alone).
        if pool is not None and self.member.row_invariant and self.member.decode_block is None:
            return pool.score(self, response, candidates, statistic)
        job = self.plan_score(response, candidates, statistic)
        return self.finish_score(job, self.scoring_pass(job))

    def scoring_pass(self, job: "ScoreJob") -> torch.Tensor | None:
        """This session's own forward pass for ``job``: log-probs at its kept rows (None: nothing fed)."""
        if not job.plan.ids:
            return None
        logits = self._forward(
            job.plan.ids,
            position_ids=torch.tensor([job.plan.positions], device=self.member.device),
            attention_mask=job.mask,
            logits_to_keep=torch.tensor(job.plan.rows, device=self.member.device),
        )
        return torch.log_softmax(logits.float(), dim=-1)

    def plan_score(self, response: str, candidates: Sequence[Candidate], statistic: TokenStatistic = "mean") -> "ScoreJob":
        """Everything a scoring pass needs before the model runs (the cache is rolled back to where
        the pass starts); :meth:`finish_score` takes the pass's log-probs at ``job.plan.rows``."""
        member = self.member
        self._drop_verified()
        context = self._context(response)
        context_len = len(context)
        full_ids, keeps, targets = self._targets(response, candidates)
        inputs = [t[:-1] for t in targets]

        own = self._reusable_draft(context, candidates, keeps, targets)
        if own is not None:
            # This member's own candidate is scored from its draft's log-probs, and its keys/values stay
            # where the draft left them (hidden from the other blocks): only the others are fed.
            plan = plan_packed_pass(context_len, keeps, inputs, context_len, len(self.cached_ids) - context_len, [], own)
        else:
            # Re-feed from the earliest position whose output predicts a candidate's first token.
            start = min(common_prefix_length(self.cached_ids, context), min(keeps) - 1)
            crop_to(self.cache, start)
            plan = plan_packed_pass(context_len, keeps, inputs, start, 0, context[start:], None)
        mask = packed_mask(plan, member.layer_types, member.sliding_window, member.model.dtype, member.device, member.name) if plan.ids else None
        return ScoreJob(candidates, statistic, context, full_ids, keeps, targets, inputs, own, plan, mask)

    def finish_score(self, job: "ScoreJob", logprobs: torch.Tensor | None) -> list[float]:
        """The candidates' scores from the pass's log-probs; the cache now holds every block (kept for
        the winner on accept)."""
        self.cached_ids = list(job.context)
        self._verified = _VerifiedBlocks(list(job.context), job.full_ids, job.keeps, job.plan.block_starts, job.inputs)
        scores = []
        for i, target in enumerate(job.targets):
            if i == job.own:
                picked = self._draft_record.own_logprobs(len(target), job.candidates[i].finished)
            else:
                picked = block_logprobs(job.plan, logprobs, i, target)
                if job.own is not None:  # the first token is predicted by the context's last position
                    picked = [float(self._draft_record.context_logprobs[target[0]])] + picked
            scores.append(token_statistic(picked, job.statistic))
            self.counters.verified_tokens += len(target)
        return scores

    def _targets(self, response: str, candidates: Sequence[Candidate]) -> tuple[list[list[int]], list[int], list[list[int]]]:
        """Per candidate: this member's tokens of ``response + candidate``, the context prefix its block
        attends to, and the tokens to score (those that differ from the response's own tokenisation,
        plus the end-of-turn token of a finished candidate)."""
        member = self.member
        full_ids, keeps, targets = [], [], []
        for cand in candidates:
            ending = (member.end_of_turn_text or "") if cand.finished else ""
            text = cand.text + ending
            full = member.encode(response + text) if text else list(self.response_ids)
            shared = common_prefix_length(self.response_ids, full)
            scored = full[shared:]
            if cand.finished and member.end_of_turn_id is not None:
                scored = scored + [member.end_of_turn_id]
            if not scored:  # nothing to score (an empty unfinished candidate): treat as an impossible choice
                scored = [member.tokenizer.eos_token_id or 0]
            full_ids.append(full)
            keeps.append(len(self.prompt_ids) + shared)
            targets.append(scored)
        return full_ids, keeps, targets

    def _reusable_draft(self, context, candidates, keeps, targets) -> int | None:
        """Index of this member's own draft among the candidates, when its draft's log-probs and cached
        keys/values can stand in for scoring it (same context and tokens, no boundary re-feed)."""
        record = self._draft_record
        context_len = len(context)
        if record is None or record.context != context or any(k != context_len for k in keeps):
            return None
        if self.cached_ids[:context_len] != context:
            return None
        fed = len(self.cached_ids) - context_len
        for index, cand in enumerate(candidates):
            if cand.text != record.text or cand.finished != record.finished:
                continue
            target = targets[index]
            count = len(target) - (1 if cand.finished else 0)
            if cand.finished and (record.end_logprob is None or count != len(record.tokens)):
                return None
            if count <= len(record.tokens) and target[:count] == record.tokens[:count] and len(target) - 1 <= fed:
                return index
            return None
        return None

    # ------------------------------------------------------------------ accept / close
    def accept(self, response: str, winner: int | None, own_draft: bool) -> None:
        self._shared = None
        verified, self._verified = self._verified, None
        own, self._draft_record = self._draft_record, None
        own_tokens = self._own_tokens_for(response, own) if own_draft else None
        if verified is not None and winner is not None:
            keep, start, block = verified.keep[winner], verified.starts[winner], verified.inputs[winner]
            splice(self.cache, keep, start, start + len(block))
            self.cached_ids = verified.context_ids[:keep] + block
            if own_tokens is None:
                self.response_ids = verified.full_ids[winner]
                self.response_text = response
        elif verified is not None:
            crop_to(self.cache, len(verified.context_ids))
        if own_tokens is not None:
            # The winner keeps its own tokens (the text it generated), not a re-tokenisation of it.
            self.response_ids, self.response_text = own_tokens, response
        if self.constraint is not None:
            self.constraint.sync_to(response)  # GrammarResyncError here is this member's fault

    def _own_tokens_for(self, response: str, own: _DraftRecord | None) -> list[int] | None:
        """This member's draft tokens that spell the accepted text exactly, if any prefix does."""
        if own is None or own.response != self.response_text or not response.startswith(own.response):
            return None
        wanted = response[len(own.response) :]
        base = self.prompt_ids + self.response_ids
        for count in range(len(own.kept), -1, -1):
            # strict: tokens that re-read the end of the context (byte-fallback bytes completing or
            # breaking a character there) do not spell ``wanted`` after it, whatever they read alone;
            # then the view is re-tokenised from the text instead.
            if self.member.tokens.continuation(base, own.kept[:count], strict=True) == wanted:
                return self.response_ids + own.kept[:count]
        return None

    def _drop_verified(self) -> None:
        self._shared = None
        if self._verified is not None:
            crop_to(self.cache, len(self._verified.context_ids))
            self._verified = None

    def close(self) -> None:
        self._drafting = self._shared = None
        self.cache = new_cache()
        self.cached_ids = []
        self._verified = None
        self._draft_record = None
        self.constraint = None


def repeating_tokens(tokens: Sequence[int], n: int) -> list[int]:
    """The tokens that would complete an ``n``-gram already in ``tokens`` (as transformers'
    ``no_repeat_ngram_size``): the followers of every earlier occurrence of the last ``n - 1`` tokens."""
    if n < 1 or len(tokens) < n - 1:
        return []
    if n == 1:
        return sorted(set(tokens))
    tail = list(tokens[len(tokens) - (n - 1) :])
    return sorted({tokens[i + n - 1] for i in range(len(tokens) - n + 1) if list(tokens[i : i + n - 1]) == tail})


def ban_unless_nothing_left(logits: torch.Tensor, banned: Sequence[int] | torch.Tensor) -> None:
    """Set ``banned`` logits (token ids, or a boolean mask over the row) to -inf in place, unless that
    would leave no token at all (a grammar may allow only a banned one: then the grammar wins and the
    row is left as it was)."""
    if isinstance(banned, torch.Tensor):
        index = banned.to(logits.device)
    else:
        index = torch.tensor(banned, dtype=torch.long, device=logits.device)
        index = index[index < logits.shape[-1]]
    saved = logits[index].clone()
    logits[index] = float("-inf")
    if not bool(torch.isfinite(logits).any()):
        logits[index] = saved
