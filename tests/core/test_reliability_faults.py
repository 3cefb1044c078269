"""Member faults: a member that raises is taken out of that request only, and reported.

Fast: random-weight members with three real tokenizers, plus scripted members where the exact
sequence of rounds matters.
"""

from __future__ import annotations

import pytest

from specfuse_core import AllMembersFailedError, EnsembleConfig, MemberFault, SpecFuse

from .reliability_fakes import InjectedFault, ScriptedMember, WrappedMember, kv_length, released

QUESTION = [{"role": "user", "content": "Name three colours."}]
CONFIG = EnsembleConfig(max_new_tokens=16, segment_tokens=4)
FINISH = {"stop", "length", "stop_sequence", "timeout"}


@pytest.fixture(scope="module")
def trio(random_members):
    return [random_members["llama"], random_members["qwen2"], random_members["gemma3"]]


def _with(members, index, wrapper):
    return [wrapper if i == index else m for i, m in enumerate(members)]


def _run(ensemble, messages=QUESTION, **overrides):
    stream = ensemble.stream(messages, **overrides)
    events = list(stream)
    return events, stream.result(), stream.request


def _well_formed(events, result):
    assert "".join(e.text for e in events) == result.text
    assert result.text, "no output"
    assert "\ufffd" not in result.text
    result.text.encode("utf-8")
    assert result.finish_reason in FINISH
    assert events[-1].finish_reason == result.finish_reason


@pytest.mark.parametrize("phase", ["draft", "score", "accept"])
@pytest.mark.parametrize("victim", [0, 1, 2], ids=["first-member", "second-member", "plain-format-member"])
def test_a_failing_member_is_taken_out_and_reported(trio, phase, victim):
    """The fault lands in trace.faults and in that round's event; the member neither drafts nor
    verifies afterwards, its caches are freed, and the others finish the request."""
    wrapped = WrappedMember(trio[victim], fail_at=1, phases=(phase,))
    ensemble = SpecFuse(_with(trio, victim, wrapped), CONFIG)
    events, result, request = _run(ensemble)
    _well_formed(events, result)

    session = wrapped.sessions[-1]
    assert session.fired == (phase, 1)
    (fault,) = result.trace.faults
    assert isinstance(fault, MemberFault)
    assert (fault.member, fault.phase) == (wrapped.name, phase)
    assert fault.error == f"InjectedFault: {wrapped.name} broke in {phase}"
    reporting = [e for e in events if e.faults]
    assert [e.round for e in reporting] == [fault.round] and reporting[0].faults == [fault]

    for r in result.trace.rounds:
        if r.round > fault.round or (r.round == fault.round and phase == "draft"):
            assert wrapped.name not in r.active_members
            assert all(wrapped.name not in c.proposers for c in r.candidates)
        if r.round > fault.round or (r.round == fault.round and phase in ("draft", "score")):
            assert wrapped.name not in r.verifiers
    assert session.closed and kv_length(session) == 0
    assert released(request)
    # output length is still counted, in the first member's tokens even when that member failed
    assert result.usage.completion_tokens > 0
    if victim == 0:
        assert result.usage.completion_tokens == len(trio[0].encode(result.text))


def test_the_others_answer_as_if_the_failed_member_was_never_there(trio):
    """A member that fails on its first draft leaves no trace in the output: the request equals one
    run by the remaining members alone (greedy)."""
    wrapped = WrappedMember(trio[1], fail_at=1, phases=("draft",))
    with_fault = SpecFuse(_with(trio, 1, wrapped), CONFIG).generate(QUESTION)
    without = SpecFuse([trio[0], trio[2]], CONFIG).generate(QUESTION)
    assert with_fault.text == without.text
    assert [r.winner_member for r in with_fault.trace.rounds] == [r.winner_member for r in without.trace.rounds]


def test_the_next_request_starts_with_every_member_again(trio):
    wrapped = WrappedMember(trio[2], fail_at=1, phases=("draft",), fail_requests=1)
    ensemble = SpecFuse(_with(trio, 2, wrapped), CONFIG)
    first = ensemble.generate(QUESTION)
    second = ensemble.generate(QUESTION)
    baseline = SpecFuse(trio, CONFIG).generate(QUESTION)
    assert [f.member for f in first.trace.faults] == [wrapped.name]
    assert second.trace.faults == []
    assert set(second.trace.rounds[0].active_members) == {m.name for m in trio}
    assert second.text == baseline.text


def test_every_member_failing_raises_one_error_listing_each_cause(trio):
    wrappers = [
        WrappedMember(trio[0], fail_at=1, phases=("draft",), fail_requests=1),
        WrappedMember(trio[1], fail_at=1, phases=("score",), fail_requests=1),
        WrappedMember(trio[2], fail_at=1, phases=("accept",), fail_requests=1),
    ]
    ensemble = SpecFuse(wrappers, CONFIG)
    stream = ensemble.stream(QUESTION)
    with pytest.raises(AllMembersFailedError) as info:
        list(stream)
    error = info.value
    assert [(f.member, f.phase) for f in error.faults] == [
        (trio[0].name, "draft"), (trio[1].name, "score"), (trio[2].name, "accept")
    ]
    for member, phase in (("llama", "draft"), ("qwen2", "score"), ("gemma3", "accept")):
        assert f"'{member}' failed in {phase} (round 1): InjectedFault: {member} broke in {phase}" in str(error)
    assert error.text == ""  # nothing had been accepted yet
    assert next(stream, None) is None  # the failed request is over
    assert released(stream.request)
    # the ensemble is fine: the next request has every member and the usual answer
    again = ensemble.generate(QUESTION)
    assert again.trace.faults == [] and again.text == SpecFuse(trio, CONFIG).generate(QUESTION).text


def test_a_member_that_cannot_start_sits_the_request_out(trio):
    wrapped = WrappedMember(trio[0], fail_start=True)
    events, result, _ = _run(SpecFuse(_with(trio, 0, wrapped), CONFIG))
    _well_formed(events, result)
    (fault,) = result.trace.faults
    assert (fault.member, fault.phase, fault.round) == ("llama", "start", 0)
    assert events[0].faults == [fault]  # start faults are reported with the first round
    assert all("llama" not in r.active_members for r in result.trace.rounds)
    # counted in the first member that started (it owns the prompt count too)
    assert result.usage.prompt_tokens == len(trio[1].prompt_ids(QUESTION))

    everyone = [WrappedMember(m, fail_start=True) for m in trio]
    with pytest.raises(AllMembersFailedError, match="'gemma3' failed in start"):
        SpecFuse(everyone, CONFIG).stream(QUESTION)


def test_exited_members_come_back_when_the_last_active_member_fails():
    """Model exit leaves one active member; when it fails, the exited (healthy) members finish."""
    prefer_a = lambda text: 1.0 if text.startswith("a") else 0.0  # noqa: E731
    a = WrappedMember(ScriptedMember("a", [f"a{i} " for i in range(8)], finish=False, prefer=prefer_a), fail_at=4, phases=("draft",))
    b = ScriptedMember("b", [f"b{i} " for i in range(8)], finish=False, prefer=prefer_a)
    c = ScriptedMember("c", [f"c{i} " for i in range(8)], finish=False, prefer=prefer_a)
    config = EnsembleConfig(model_exit=True, exit_warmup_rounds=2, exit_threshold=0.34, max_rounds=6)
    events, result, request = _run(SpecFuse([a, b, c], config))
    assert result.trace.exited == ["b", "c"]
    assert [r.active_members for r in result.trace.rounds][:5] == [["a", "b", "c"], ["a", "b", "c"], ["a"], ["b", "c"], ["b", "c"]]
    assert result.text == "a0 a1 a2 b2 b3 b4 "
    assert [(f.member, f.phase, f.round) for f in result.trace.faults] == [("a", "draft", 4)]
    assert released(request)


class Abort(BaseException):
    """Stands for KeyboardInterrupt / SystemExit: not a member fault."""


def test_base_exceptions_are_not_swallowed_and_free_the_request(trio):
    wrapped = WrappedMember(trio[1], fail_at=2, phases=("draft",), fail_requests=1, error=Abort)
    ensemble = SpecFuse(_with(trio, 1, wrapped), CONFIG)
    stream = ensemble.stream(QUESTION)
    with pytest.raises(Abort):
        list(stream)
    assert stream.request.done and released(stream.request)
    assert ensemble.generate(QUESTION).text == SpecFuse(trio, CONFIG).generate(QUESTION).text


def test_counting_falls_back_when_the_counting_member_cannot_count():
    """A backend whose token counting breaks hands counting to the next member; output stays exact."""

    class BadCounter(ScriptedMember):
        def start(self, conversation, chooser, reserved=0):
            session = super().start(conversation, chooser, reserved)

            def broken(response):
                raise InjectedFault("tokenizer gone")

            session.count_tokens = broken
            return session

    bad = BadCounter("bad", ["one ", "two ", "three"])
    good = ScriptedMember("good", ["one ", "two ", "three"])
    events, result, _ = _run(SpecFuse([bad, good], EnsembleConfig(max_new_tokens=6)))
    assert result.text == "one tw" and result.finish_reason == "length"
    assert result.usage.completion_tokens == 6
    assert [(f.member, f.phase) for f in result.trace.faults] == [("bad", "accept")]


def test_logs_never_carry_prompts_or_outputs(trio, caplog):
    """Faults are logged at WARNING with the member, phase, round and exception type only: an
    exception message may quote the prompt, so it goes to the trace, not the log."""
    secret = "SECRET-PROMPT-4711"
    leaky = WrappedMember(trio[1], fail_at=1, phases=("score",), error=lambda message: InjectedFault(f"{message}: {secret}"))
    with caplog.at_level("DEBUG"):
        result = SpecFuse(_with(trio, 1, leaky), CONFIG).generate(f"Repeat after me: {secret}")
    assert secret in result.trace.faults[0].error
    warnings = [r for r in caplog.records if r.name.startswith("specfuse") and r.levelname == "WARNING"]
    assert len(warnings) == 1 and "qwen2" in warnings[0].getMessage() and "InjectedFault" in warnings[0].getMessage()
    for record in caplog.records:
        if record.name.startswith(("specfuse", "langchain_specfuse", "llamaindex_specfuse")) and record.levelno >= 20:
            assert secret not in record.getMessage() and (not result.text or result.text not in record.getMessage())
