"""The member interface, and its implementation for a local transformers causal LM.

A *member* is a loaded model; a *session* is that member's state inside one request (its KV cache
and its token view of the shared response). Sessions are what the engine drives, so several requests
can share a member's weights without sharing caches. Another backend (a remote server) implements
:class:`MemberSession` and :meth:`Member.start`-like construction; the engine needs nothing else.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ContextWindowExceededError, ModelLoadError, ModelNotFoundError, SpecFuseError, UnsafeCheckpointError
from .model_specs import check_hub_reachable, hub_load_error, resolve_model_spec
from .kv_cache import common_prefix_length, crop_to, new_cache, splice
from .messages import Conversation
from .prompt_format import PlainPromptFormat
from .sampling import TokenChooser
from .text_align import REPLACEMENT_CHAR, cut_to_word_boundary
from .tokenizer_view import TextMember, TokenizerView

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Candidate:
    """A proposed segment. ``finished``: its member ended the turn right after this text."""

    text: str
    finished: bool


@dataclass(frozen=True)
class Draft(Candidate):
    tokens_drafted: int = 0
    # the drafter's own confidence in its segment (None: unknown); not part of what is proposed
    mean_logprob: float | None = field(default=None, compare=False)


@dataclass
class MemberCounters:
    """Work one member did in one request."""

    drafted_tokens: int = 0
    verified_tokens: int = 0
    forward_calls: int = 0


class MemberSession(ABC):
    """One member inside one request: the four operations a round needs."""

    name: str
    counters: MemberCounters

    @property
    @abstractmethod
    def prompt_tokens(self) -> int:
        """Prompt length in this member's tokens."""

    @property
    @abstractmethod
    def context_tokens(self) -> int:
        """Prompt plus response so far, in this member's tokens."""

    @abstractmethod
    def draft(self, response: str, max_tokens: int, align: bool = True) -> Draft:
        """Continue ``prompt + response`` by up to ``max_tokens`` own tokens; return aligned text."""

    @abstractmethod
    def score(self, response: str, candidates: Sequence[Candidate]) -> list[float]:
        """Mean log-probability of each candidate after ``prompt + response``, in one batched pass."""

    @abstractmethod
    def accept(self, response: str, winner: int | None, own_draft: bool) -> None:
        """The round's winner was appended: ``response`` is the new text. ``winner`` indexes the
        candidates of the last :meth:`score` call (None if this session did not score);
        ``own_draft`` says the winning text is this session's own last draft."""

    @abstractmethod
    def count_tokens(self, response: str) -> int:
        """Length of ``response`` in this member's tokens (its own tokens where it wrote the text)."""

    @abstractmethod
    def truncate(self, response: str, max_tokens: int) -> str:
        """The text of the first ``max_tokens`` of this member's tokens of ``response``."""

    @abstractmethod
    def close(self) -> None:
        """Release the request's caches."""


class Member(TextMember):
    """A local ``transformers`` causal LM usable as an ensemble member.

    Build with :meth:`from_pretrained` (hub id or directory) or :meth:`from_gguf` (a GGUF file,
    converted once to safetensors under the cache dir).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        plain_prompt: PlainPromptFormat | None = None,
        context_window: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.tokens = TokenizerView(tokenizer, plain_prompt)
        self.plain_prompt = self.tokens.plain_prompt
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.context_window = int(context_window or getattr(config, "max_position_embeddings", 0) or 2048)
        self.device = next(model.parameters()).device
        self.layer_types: list[str] | None = getattr(config, "layer_types", None)
        self.sliding_window: int | None = getattr(config, "sliding_window", None)
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.end_of_turn_id, self.end_of_turn_text = self.tokens.end_of_turn_id, self.tokens.end_of_turn_text
        self.stop_token_ids = self._find_stop_token_ids()
        self.stop_strings = self.tokens.stop_strings

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        *,
        name: str | None = None,
        dtype: str | torch.dtype | None = None,
        device: str | None = "cpu",
        device_map: Any = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        plain_prompt: PlainPromptFormat | None = None,
        context_window: int | None = None,
        **model_kwargs: Any,
    ) -> "Member":
        """Load a hub id or local directory. Safetensors only, unless ``allow_pickle=True``.

        The string is checked first (:func:`~specfuse_core.model_specs.resolve_model_spec`): a missing
        path, a directory without ``config.json`` or an uncached hub id while offline raise
        :class:`ModelNotFoundError`; a hub id that cannot be downloaded raises it too, in one line."""
        from huggingface_hub import try_to_load_from_cache
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kind, source = resolve_model_spec(path_or_id)
        if kind == "gguf":
            raise ModelNotFoundError(str(path_or_id), "is a GGUF file: load it with Member.from_gguf")
        path = Path(source)
        if path.is_dir() and not allow_pickle and not any(path.glob("*.safetensors")):
            if any(path.glob("*.bin")) or any(path.glob("*.pt")):
                raise UnsafeCheckpointError(
                    f"{path} holds only pickled weights (.bin/.pt), which can run code when loaded; convert "
                    "them to safetensors, or pass allow_pickle=True if you trust the source"
                )
        kwargs: dict[str, Any] = dict(trust_remote_code=trust_remote_code, **model_kwargs)
        if not allow_pickle:
            kwargs["use_safetensors"] = True
        kwargs["dtype"] = _resolve_dtype(dtype)
        if device_map is not None:
            kwargs["device_map"] = device_map
        local = path.is_dir()
        if not local and not isinstance(try_to_load_from_cache(source, "config.json"), str):
            check_hub_reachable(source)
        try:
            # Loading cached weights takes a second or two: no progress bars for that (downloads keep theirs).
            with _progress_bars(enabled=not local):
                tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
                model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except OSError as error:
            if not local:
                raise hub_load_error(source, error) from error
            raise ModelLoadError(f"could not load the model directory {path}: {_first_line(error)}") from error
        if device_map is None and device is not None:
            model = model.to(device)
        return cls(
            model,
            tokenizer,
            name=name or path.name or str(path_or_id),
            plain_prompt=plain_prompt,
            context_window=context_window,
        )

    @classmethod
    def from_gguf(
        cls,
        file: str | Path,
        *,
        name: str | None = None,
        sha256: str | None = None,
        **kwargs: Any,
    ) -> "Member":
        """Load a GGUF file (dequantised to fp32 once, then cached as safetensors)."""
        from .weights_cache import converted_dir, verify_sha256

        file = Path(file).expanduser()
        if not file.is_file():
            where = "is a directory, not a file" if file.is_dir() else "does not exist"
            raise ModelNotFoundError(str(file), f"GGUF file {file.absolute()} {where}")
        if sha256 is not None:
            verify_sha256(file, sha256, "pass the digest of the file you meant to load")
        try:
            directory = converted_dir(file, sha256)
        except SpecFuseError:
            raise
        except Exception as error:  # a corrupt or unsupported file: one named error, cause chained
            raise ModelLoadError(f"could not convert the GGUF file {file}: {_first_line(error)}") from error
        return cls.from_pretrained(directory, name=name or file.stem, **kwargs)

    def describe(self) -> dict[str, Any]:
        """Small, serialisable identity of this member (no model objects)."""
        return {
            "name": self.name,
            "model": str(getattr(self.model.config, "_name_or_path", "")) or type(self.model).__name__,
            "architecture": getattr(self.model.config, "model_type", "unknown"),
            "context_window": self.context_window,
            "prompt_format": "plain" if self.plain_prompt else "chat_template",
            "device": str(self.device),
        }

    def start(self, conversation: Conversation, chooser: TokenChooser, reserved: int = 0) -> "LocalSession":
        """A fresh session for one request; raises if the prompt (plus ``reserved`` tokens for a
        round) does not fit the context window."""
        prompt = self.prompt_ids(conversation)
        if len(prompt) + reserved >= self.context_window:
            raise ContextWindowExceededError(self.name, len(prompt), self.context_window, reserved)
        return LocalSession(self, prompt, chooser)

    def _find_stop_token_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for value in (eos, self.tokenizer.eos_token_id, self.end_of_turn_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return frozenset(ids)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """transformers' progress bars on or off for one load (process-wide setting, restored after)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    if before == enabled:
        yield
        return
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()


def _resolve_dtype(dtype: str | torch.dtype | None) -> Any:
    if dtype is None or dtype == "auto":
        return "auto" if dtype == "auto" else torch.float32
    if isinstance(dtype, str):
        return getattr(torch, dtype)
    return dtype


@dataclass
class _VerifiedBlocks:
    """Where the last score() left each candidate's keys/values in the cache, for reuse on accept."""

    context_ids: list[int]
    full_ids: list[list[int]]  # each candidate's re-tokenised response + candidate
    keep: list[int]  # context prefix each candidate's block attends to
    starts: list[int]  # cache offset of each block
    inputs: list[list[int]]  # tokens fed for each block


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

    def own_logprobs(self, count: int, finished: bool) -> list[float]:
        picked = self.token_logprobs[: count - (1 if finished else 0)]
        return picked + [self.end_logprob] if finished else picked


class LocalSession(MemberSession):
    def __init__(self, member: Member, prompt_ids: list[int], chooser: TokenChooser) -> None:
        self.member = member
        self.name = member.name
        self.prompt_ids = prompt_ids
        self.chooser = chooser
        self.counters = MemberCounters()
        self.cache = new_cache()
        self.cached_ids: list[int] = []  # tokens whose keys/values the cache holds (a prefix of it)
        self.response_text = ""
        self.response_ids: list[int] = []  # this member's tokens for response_text
        self._verified: _VerifiedBlocks | None = None
        self._draft_record: _DraftRecord | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def context_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)

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

    def _view(self, response: str) -> list[int]:
        """This member's tokens for ``prompt + response`` (re-tokenising only when the text changed)."""
        if response != self.response_text:
            self.response_ids = self.member.encode(response)
            self.response_text = response
        return self.prompt_ids + self.response_ids

    # ------------------------------------------------------------------ draft
    def draft(self, response: str, max_tokens: int, align: bool = True) -> Draft:
        self._drop_verified()
        context = self._view(response)
        logits = self._sync(context)
        record = _DraftRecord(response, context, torch.log_softmax(logits.float(), -1))
        logprobs = record.context_logprobs
        tokens: list[int] = []
        finished = False
        for step in range(max_tokens):
            token = self.chooser.choose(logits)
            if token in self.member.stop_token_ids:
                finished = True
                if self.member.end_of_turn_id is not None:
                    record.end_logprob = float(logprobs[self.member.end_of_turn_id])
                break
            tokens.append(token)
            record.token_logprobs.append(float(logprobs[token]))
            if step + 1 < max_tokens:
                logits = self._forward([token], logits_to_keep=1)[-1]
                logprobs = torch.log_softmax(logits.float(), -1)
                self.cached_ids.append(token)
        self.counters.drafted_tokens += len(tokens)
        record.tokens = list(tokens)

        text, tokens = self._complete_characters(context, tokens, finished)
        for stop in self.member.stop_strings:  # plain-format members end their turn with text
            if stop in text:
                text, finished = text[: text.index(stop)].rstrip("\n"), True
        if self.member.plain_prompt is not None and not response:
            text = text.lstrip(" ")  # "Assistant:" is followed by a space that is format, not answer
        if align:
            text = cut_to_word_boundary(text, finished)
        record.kept, record.text, record.finished = tokens, text, finished
        self._draft_record = record
        own = record.token_logprobs[: len(tokens)] + ([record.end_logprob] if finished and record.end_logprob is not None else [])
        confidence = sum(own) / len(own) if own else None
        return Draft(text=text, finished=finished, tokens_drafted=len(record.tokens), mean_logprob=confidence)

    def _continuation(self, context: list[int], tokens: list[int]) -> str:
        """Text of ``tokens`` as it reads after ``context`` (see :meth:`TokenizerView.continuation`)."""
        return self.member.tokens.continuation(context, tokens)

    def _complete_characters(self, context: list[int], tokens: list[int], finished: bool) -> tuple[str, list[int]]:
        """Hold back tokens that end in the middle of a UTF-8 character (they decode to U+FFFD)."""
        text = self._continuation(context, tokens)
        while tokens and text.endswith(REPLACEMENT_CHAR):
            tokens = tokens[:-1]
            text = self._continuation(context, tokens)
        return text, tokens

    # ------------------------------------------------------------------ score
    def score(self, response: str, candidates: Sequence[Candidate]) -> list[float]:
        member = self.member
        self._drop_verified()
        context = self._view(response)
        prompt_len, context_len = len(self.prompt_ids), len(context)

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
            keeps.append(prompt_len + shared)
            targets.append(scored)
        inputs = [t[:-1] for t in targets]

        own = self._reusable_draft(context, candidates, keeps, targets)
        if own is not None:
            # This member's own candidate is scored from its draft's log-probs, and its keys/values stay
            # where the draft left them (hidden from the other blocks): only the others are fed.
            start, hidden, shared_ids = context_len, len(self.cached_ids) - context_len, []
            packed_blocks = [i for i in range(len(candidates)) if i != own]
        else:
            # Re-feed from the earliest position whose output predicts a candidate's first token.
            start = min(common_prefix_length(self.cached_ids, context), min(keeps) - 1)
            hidden, shared_ids = 0, context[start:]
            crop_to(self.cache, start)
            packed_blocks = list(range(len(candidates)))

        positions = list(range(start, context_len))
        block_starts = [context_len] * len(candidates)  # the own candidate's tokens already sit there
        rows: list[int] = []
        row_slices: dict[int, tuple[int, int]] = {}
        offset = len(shared_ids)
        for i in packed_blocks:
            keep, block = keeps[i], inputs[i]
            block_starts[i] = start + hidden + offset
            positions.extend(range(keep, keep + len(block)))
            first_rows = [] if own is not None else [keep - 1 - start]
            row_slices[i] = (len(rows), len(rows) + len(first_rows) + len(block))
            rows.extend(first_rows)
            rows.extend(range(offset, offset + len(block)))
            offset += len(block)
        packed = shared_ids + [t for i in packed_blocks for t in inputs[i]]
        logprobs = None
        if packed:
            mask = self._packed_mask(
                start, hidden, len(shared_ids), [keeps[i] for i in packed_blocks], [len(inputs[i]) for i in packed_blocks], positions
            )
            logits = self._forward(
                packed,
                position_ids=torch.tensor([positions], device=member.device),
                attention_mask=mask,
                logits_to_keep=torch.tensor(rows, device=member.device),
            )
            logprobs = torch.log_softmax(logits.float(), dim=-1)
        self.cached_ids = list(context)
        self._verified = _VerifiedBlocks(list(context), full_ids, keeps, block_starts, inputs)

        scores = []
        for i, target in enumerate(targets):
            if i == own:
                picked = self._draft_record.own_logprobs(len(target), candidates[i].finished)
            else:
                lo, hi = row_slices[i]
                from_pass = target[len(target) - (hi - lo) :]
                picked = [] if hi == lo else logprobs[lo:hi].gather(1, torch.tensor(from_pass, device=logprobs.device)[:, None])[:, 0].tolist()
                if own is not None:  # the first token is predicted by the context's last position
                    picked = [float(self._draft_record.context_logprobs[target[0]])] + picked
            scores.append(sum(picked) / len(picked))
            self.counters.verified_tokens += len(target)
        return scores

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

    def _packed_mask(
        self, start: int, hidden: int, n_shared: int, keeps: list[int], lengths: list[int], positions: list[int]
    ) -> Any:
        """Additive mask for the packed input [shared context tail | block 1 | block 2 | ...] over the keys
        [cache prefix | hidden draft region | the packed tokens].

        Each block sees the cache prefix, the shared tail up to its own start, and itself causally;
        never another block nor the hidden draft. Sliding-window layers get the same mask limited to
        their window.
        """
        member = self.member
        q_len = n_shared + sum(lengths)
        base = start + hidden  # key column of the first packed token
        allowed = torch.zeros(q_len, base + q_len, dtype=torch.bool)
        allowed[:, :start] = True
        allowed[:n_shared, base : base + n_shared] = torch.tril(torch.ones(n_shared, n_shared, dtype=torch.bool))
        row = n_shared
        for keep, length in zip(keeps, lengths):
            if length == 0:
                continue
            allowed[row : row + length, base : base + keep - start] = True
            allowed[row : row + length, base + row : base + row + length] = torch.tril(
                torch.ones(length, length, dtype=torch.bool)
            )
            row += length
        masks = {"full_attention": allowed}
        types = set(member.layer_types or [])
        if "sliding_attention" in types and member.sliding_window:
            hidden_pos = torch.full((hidden,), -(10**9), dtype=torch.long)  # never visible anyway
            key_pos = torch.cat([torch.arange(start), hidden_pos, torch.tensor(positions, dtype=torch.long)])
            query_pos = torch.tensor(positions, dtype=torch.long)
            masks["sliding_attention"] = allowed & (key_pos[None, :] > query_pos[:, None] - member.sliding_window)
        dtype = member.model.dtype
        unknown = types - set(masks)
        if unknown:
            raise NotImplementedError(f"member {member.name!r} has attention layer types {sorted(unknown)} that packed scoring does not support")
        additive = {
            key: torch.zeros(value.shape, dtype=dtype).masked_fill(~value, torch.finfo(dtype).min)[None, None].to(member.device)
            for key, value in masks.items()
        }
        return additive if member.layer_types else additive["full_attention"]

    # ------------------------------------------------------------------ accept / close
    def accept(self, response: str, winner: int | None, own_draft: bool) -> None:
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

    def count_tokens(self, response: str) -> int:
        return len(self._view(response)) - len(self.prompt_ids)

    def truncate(self, response: str, max_tokens: int) -> str:
        ids = self._view(response)[len(self.prompt_ids) :][:max_tokens]
        text = self._continuation(self.prompt_ids, ids).rstrip(REPLACEMENT_CHAR)
        if not response.startswith(text):  # a normalising tokenizer (Qwen2: NFC): cut the accepted text itself
            text = self.member.tokens.longest_prefix_within(response, max_tokens)
            ids = self.member.encode(text)
        self.response_text, self.response_ids = text, ids  # keep this member's own tokens for the cut text
        return text

    def _drop_verified(self) -> None:
        if self._verified is not None:
            crop_to(self.cache, len(self._verified.context_ids))
            self._verified = None

    def close(self) -> None:
        self.cache = new_cache()
        self.cached_ids = []
        self._verified = None
        self._draft_record = None
