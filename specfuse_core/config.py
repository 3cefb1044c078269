"""Validated ensemble settings. One pydantic model, so bad values fail early with a clear message."""

from __future__ import annotations

import difflib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import UnsupportedArgumentError

#: Call-argument names other libraries use for a field, accepted per call by the core and the adapters.
CALL_ALIASES: dict[str, str] = {"max_tokens": "max_new_tokens", "timeout": "timeout_s"}


class EnsembleConfig(BaseModel):
    """Every knob of a request. Per-call overrides go through :meth:`with_overrides`, which re-validates."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    # -- decoding
    segment_tokens: int = Field(10, ge=1, le=256, description="Tokens each member drafts per round (its own tokens).")
    max_new_tokens: int = Field(256, ge=1, description="Output length cap, counted in the counting member's tokens (see counting_member).")
    max_rounds: int | None = Field(None, ge=1, description="Round cap; default: max_new_tokens (each round adds >= 1 token).")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy drafting.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 disables top-k.")
    seed: int | None = Field(None, description="Seed for sampled drafts (temperature > 0).")
    stop: list[str] = Field(default_factory=list, description="Stop strings; the output is cut before the first one.")

    # -- scoring and combination
    normalization: Literal["softmax", "rank", "raw"] = Field(
        "softmax",
        description="How each verifier's scores become votes: 'softmax' over the candidates, 'rank' (Borda), or 'raw' "
        "(the log-probs as they are, so one verifier's doubt of a candidate is compared with another's; with "
        "exclude_self_vote each candidate is judged only by the members that did not propose it).",
    )
    vote_statistic: Literal["mean", "min"] = Field(
        "mean",
        description="What verifiers report in a vote: each candidate's 'mean' token log-prob, or its 'min' (the one "
        "token the verifier finds least likely, such as a wrong name in a fluent sentence).",
    )
    score_temperature: float = Field(1.0, gt=0.0, description="Temperature of the per-verifier softmax over candidates.")
    weighting: Literal["uniform", "hedge"] = "uniform"
    hedge_learning_rate: float = Field(1.0, gt=0.0, description="Hedge step size eta_0; round t uses eta_0 / sqrt(t).")
    persist_weights: bool = Field(False, description="Keep hedge weights across requests of one ensemble.")
    exclude_self_vote: bool = Field(False, description="A member does not vote on candidates it proposed.")
    repetition_penalty: float = Field(
        0.0, ge=0.0, description="Subtracted from the combined score times the share of the candidate's word 3-grams already in the prompt or response."
    )
    end_of_turn_scoring: Literal["token", "text_only"] = Field(
        "token",
        description="How a finished candidate is scored: 'token' adds each verifier's end-of-turn token to its mean; "
        "'text_only' scores its text alone, like an unfinished candidate (compare like with like).",
    )
    no_repeat_ngram_size: int = Field(
        0,
        ge=0,
        description="Local members never draft a token that would repeat, in the response, an n-gram of this many of "
        "their own tokens (breaks greedy loops such as a JSON string that repeats one phrase until max_new_tokens); 0: off.",
    )
    consensus_weight: float = Field(
        0.0, ge=0.0, description="Added to the combined score times the share of other drafters whose draft begins with the candidate's first words."
    )
    contrast_weight: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Context-free contrast (PMI-style): in a vote, each verifier's mean log-prob of a candidate minus this "
        "times its mean log-prob after the same conversation with the last user message emptied. Text that is likely "
        "whatever the question (a generic opening) loses its edge; costs one more scoring pass per verifier per vote; 0: off.",
    )
    contrast_rounds: int | None = Field(
        None,
        ge=1,
        description="The contrast applies only in a response's first this many rounds, where its opening is chosen; later the "
        "response itself carries what the question said, and the contrast would discount it. None: every round.",
    )

    # -- whom to trust
    member_weights: dict[str, float] = Field(
        default_factory=dict, description="Prior weight of each member's vote (e.g. from `specfuse calibrate`); unnamed members weigh 1."
    )
    roles: dict[str, Literal["both", "draft", "verify", "reserve"]] = Field(
        default_factory=dict,
        description="Per member: 'draft' proposes only, 'verify' scores only, 'both' (default) does both. 'reserve' scores, "
        "and under confidence gating also drafts in the rounds the gate does not settle (the lead unsure, or doubted by "
        "the second opinion), so a lead that drafts alone still meets a competing candidate when it is doubted.",
    )
    gate_threshold: float | None = Field(
        None,
        description="Confidence gating: the lead member drafts alone, and its segment is accepted without a vote when "
        "its mean token log-prob is at least this; otherwise the whole ensemble drafts and votes. None: every round votes.",
    )
    gate_check_threshold: float | None = Field(
        None,
        description="A second opinion under gating: a confident lead's segment is also scored by the most trusted other "
        "verifier (one scoring pass), and the round votes after all when that member's mean token log-prob of it is below "
        "this. Catches a lead that is sure and wrong. None: off.",
    )
    gate_check_statistic: Literal["mean", "min"] = Field(
        "mean",
        description="What the second opinion compares with gate_check_threshold: the checker's 'mean' token log-prob of "
        "the lead's segment, or its 'min' (the one token it finds least likely, such as a wrong name in a fluent sentence).",
    )
    gate_check_rounds: int | None = Field(
        None,
        ge=1,
        description="The second opinion runs only in a response's first this many rounds, where a short answer's "
        "content is decided; later confident segments are accepted on the lead's confidence alone (bounds the check's "
        "cost on long answers). None: every round.",
    )
    gate_check_tokens: int | None = Field(
        None,
        ge=1,
        description="The second opinion runs only while the response is shorter than this many tokens (counted like "
        "max_new_tokens), the span a calibration made at that cap measured; later confident segments are accepted on "
        "the lead's confidence alone. Unlike gate_check_rounds it does not depend on segment lengths, so answers within "
        "the window are decoded exactly as with the check everywhere. None: no token limit.",
    )
    lead_member: str | None = Field(None, description="The member that drafts alone under gating; default: the highest member_weights, else the first.")
    counting_member: str | None = Field(
        None,
        description="The member whose tokens count max_new_tokens and usage; default: the first member. Name the member "
        "whose text usually wins to give the ensemble that member's length budget (measured: docs/evaluation.md).",
    )

    # -- model exit
    model_exit: bool = False
    exit_warmup_rounds: int = Field(3, ge=1)
    exit_temperature: float = Field(0.25, gt=0.0, description="Temperature of the softmax over cumulative quality; lower exits sooner.")
    exit_threshold: float = Field(0.2, ge=0.0, lt=1.0, description="Members whose share of cumulative quality falls below this exit.")
    min_members: int = Field(1, ge=1)
    exited_members_verify: bool = Field(False, description="Exited members keep scoring candidates.")

    # -- concurrency
    max_batch_requests: int = Field(
        8, ge=1, le=4096,
        description="Concurrent requests whose rounds run together (shared drafting passes); 1 runs rounds one at a time. "
        "An ensemble setting: read from the ensemble's config, not per request.",
    )
    pooled_scoring: bool = Field(
        True,
        description="Concurrent requests' rounds also share their scoring passes (one pass per member for the batch; "
        "docs/architecture.md, 'Concurrency'). An ensemble setting, like max_batch_requests.",
    )
    pooled_drafting: bool = Field(
        True,
        description="With pooled_scoring, the drafts a round adds after an unsure or doubted lead also run in passes shared "
        "with the batch's other requests (the lead's own draft is shared before the rounds start either way). An "
        "ensemble setting, like max_batch_requests.",
    )

    # -- bad input and reliability
    context_overflow: Literal["error", "skip_member"] = "error"
    timeout_s: float | None = Field(
        None, gt=0.0, description="Wall-clock limit of one request, checked between rounds; on expiry it ends with the text so far (finish_reason 'timeout')."
    )

    @field_validator("member_weights")
    @classmethod
    def _positive_weights(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, weight in value.items() if not (math.isfinite(weight) and weight > 0)]
        if bad:
            raise ValueError(f"member weights must be finite and > 0 (a member to leave out gets role or exit settings instead): {', '.join(bad)}")
        return value

    @field_validator("gate_threshold", "gate_check_threshold")
    @classmethod
    def _log_prob(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value <= 0):
            raise ValueError("is a token log-probability (a mean, or the check's minimum): a finite number <= 0")
        return value

    @field_validator("temperature", "top_p", "score_temperature", "exit_temperature", "hedge_learning_rate", "repetition_penalty", "consensus_weight", "contrast_weight")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("stop")
    @classmethod
    def _stop_non_empty(cls, value: list[str]) -> list[str]:
        if any(s == "" for s in value):
            raise ValueError("stop strings must be non-empty")
        return list(dict.fromkeys(value))  # de-duplicate, keep order

    @model_validator(mode="after")
    def _hedge_needs_shares(self) -> "EnsembleConfig":
        # Hedge's loss is a candidate's share of the best peer score: it needs scores in [0, 1].
        if self.normalization == "raw" and self.weighting == "hedge":
            raise ValueError("normalization='raw' cannot drive weighting='hedge' (Hedge needs normalised votes); use 'softmax' or 'rank' with hedge")
        return self

    @property
    def round_reserve(self) -> int:
        """Tokens every member's window must keep free for one round (drafts and candidates)."""
        return 4 * self.segment_tokens

    @property
    def round_cap(self) -> int:
        return self.max_rounds if self.max_rounds is not None else self.max_new_tokens

    def with_overrides(self, **overrides: Any) -> "EnsembleConfig":
        """Return a validated copy with per-call overrides applied. ``None`` keeps a setting; the
        aliases in :data:`CALL_ALIASES` name their fields; an unknown name raises
        ``UnsupportedArgumentError`` (even with ``None``: a typo must not pass silently)."""
        unknown = sorted(set(overrides) - set(EnsembleConfig.model_fields) - set(CALL_ALIASES))
        if unknown:
            raise UnsupportedArgumentError(unknown_settings_message(unknown))
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            name = CALL_ALIASES.get(key, key)
            if value is None or (name != key and overrides.get(name) is not None):
                continue  # the field's own name wins over its alias
            changes[name] = value
        if not changes:
            return self
        return EnsembleConfig.model_validate({**self.model_dump(), **changes})


def unknown_settings_message(names: list[str], *, aliases: bool = True) -> str:
    """Name each unknown setting with the closest field, so a typo is fixed in one go. ``aliases``:
    whether the call aliases (``max_tokens``) are accepted where the names were given."""
    fields = [*EnsembleConfig.model_fields, *(CALL_ALIASES if aliases else ())]
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return f"unknown EnsembleConfig setting(s): {', '.join(parts)}; see docs/configuration.md for the fields"
