"""Pooled scoring: concurrent requests' scoring passes on one member run as one forward pass. The
pooled pass must give each request the scores and cache its lone pass gives (to float rounding), and
the turn-taking must run every parked pass exactly once, grouped by member."""

from __future__ import annotations

import threading

import pytest
import torch

from specfuse_core import EnsembleConfig, Member, Sampling, SpecFuse
from specfuse_core.member import Candidate
from specfuse_core.pooled_scoring import ScoringPool

from .test_batched_rounds import PROMPTS, TOKENS, _concurrently
from .test_member_packed_scoring import CANDIDATES, naive_scores

CONVERSATIONS = [
    [{"role": "user", "content": "Tell me about the sea, briefly, in two lines."}],
    [{"role": "user", "content": "Name three rivers of Europe and say which is longest, with reasons."}],
    [{"role": "user", "content": "Hi"}],
]
RESPONSES = ["The sea is wide and deep,\nit", "The Danube", ""]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize("drafted", [False, True])
def test_a_pooled_pass_scores_like_each_lone_pass_and_leaves_each_cache_right(random_members, arch, drafted):
    """Three requests of different lengths (segments of one packed row), one with a draft in its cache when ``drafted``
    (the hidden region): scores equal naive scoring, and accepting a candidate afterwards leaves each
    cache equal to a fresh prefill."""
    member = random_members[arch]
    sessions = [member.start(c, Sampling()) for c in CONVERSATIONS]
    candidate_sets = []
    for session, response in zip(sessions, RESPONSES):
        candidates = list(CANDIDATES[:4])
        if drafted:
            candidates.append(session.draft(response, 4))
        candidate_sets.append(candidates)
    jobs = [(s, s.plan_score(r, c)) for s, r, c in zip(sessions, RESPONSES, candidate_sets)]
    calls = [s.counters.forward_calls for s in sessions]
    logprobs = member.score_together(jobs)
    for (session, job), lp, response, candidates, before in zip(jobs, logprobs, RESPONSES, candidate_sets, calls):
        scores = session.finish_score(job, lp)
        assert scores == pytest.approx(naive_scores(member, session.prompt_ids, response, candidates), abs=2e-4)
        assert session.counters.forward_calls == before + 1 and session.counters.shared_forward_calls >= 1
        new_response = response + candidates[1].text
        session.accept(new_response, 1, own_draft=False)
        context = session._context(new_response)
        logits = session._sync(context)
        with torch.inference_mode():
            fresh = member.model(torch.tensor([context])).logits[0, -1]
        assert torch.allclose(logits, fresh, atol=1e-4)


@pytest.fixture(scope="module")
def rows_as_needed(random_members):
    """The three members in the default mode (decode_block=None), where scoring passes are pooled."""
    return [Member(m.model, m.tokenizer, name=m.name, plain_prompt=m.plain_prompt) for m in (random_members["llama"], random_members["qwen2"], random_members["gemma3"])]


def test_concurrent_requests_pool_their_scoring_passes(rows_as_needed):
    ensemble = SpecFuse(rows_as_needed)
    alone = [ensemble.generate(p, max_new_tokens=TOKENS) for p in PROMPTS]
    assert ensemble.batching["shared_scoring_passes"] == 0
    results = _concurrently(ensemble, PROMPTS)
    assert ensemble.batching["shared_scoring_passes"] > 0
    for together, lone in zip(results, alone):
        assert together.finish_reason in ("stop", "length") and together.usage.completion_tokens > 0
        assert together.trace.faults == []
        # each request does the same kind of work as alone: one scoring pass per verifier and vote
        assert len(together.trace.rounds) > 0
    # near-ties of random weights may move a vote; most requests come out exactly as alone
    assert sum(t.text == a.text for t, a in zip(results, alone)) >= len(PROMPTS) - 1


def test_pooling_can_be_turned_off(rows_as_needed):
    ensemble = SpecFuse(rows_as_needed, EnsembleConfig(pooled_scoring=False))
    _concurrently(ensemble, PROMPTS[:3])
    assert ensemble.batching["batched_rounds"] > 0 and ensemble.batching["shared_scoring_passes"] == 0


def test_a_failed_pooled_pass_is_a_fault_of_that_member_in_each_request(rows_as_needed, monkeypatch):
    member = rows_as_needed[1]

    def broken(jobs):
        raise RuntimeError("pooled pass failed")

    monkeypatch.setattr(member, "score_together", broken)
    ensemble = SpecFuse(rows_as_needed, EnsembleConfig(gate_threshold=None))
    results = _concurrently(ensemble, PROMPTS[:3])
    faulted = [r for r in results if any(f.member == member.name and f.phase == "score" for f in r.trace.faults)]
    assert len(faulted) >= 2  # every request that was in the failed pass lost that member
    for r in results:
        assert r.usage.completion_tokens > 0  # and went on with the others
        assert {f.member for f in r.trace.faults} <= {member.name}


# ---------------------------------------------------------------------- turns, with fakes (no model)
class _FakeMember:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def score_together(self, jobs):
        self.log.append(("together", self.name, sorted(job.request for _, job in jobs)))
        return [float(job.request) for _, job in jobs]


class _FakeJob:
    def __init__(self, request, fed=True):
        self.request = request
        self.plan = type("Plan", (), {"ids": [1] if fed else []})()


class _FakeSession:
    def __init__(self, member, request, log):
        self.member, self.request, self.log = member, request, log

    def plan_score(self, response, candidates, statistic):
        self.log.append(("plan", self.member.name, self.request))
        return _FakeJob(self.request, fed=bool(candidates))

    def scoring_pass(self, job):
        self.log.append(("alone", self.member.name, self.request))
        return float(job.request)

    def finish_score(self, job, logprobs):
        return [logprobs]


def test_turns_run_each_parked_pass_once_grouped_by_member():
    log = []
    a, b = _FakeMember("a", log), _FakeMember("b", log)
    pool = ScoringPool(3)
    out = {}

    def round_(i, members):
        def run():
            out[i] = []
            for member in members:
                out[i].append(pool.score(_FakeSession(member, i, log), "", ["x"], "mean"))
            log.append(("done", i))

        return run

    # request 0 scores on a then b; request 1 on a; request 2 on b then a (different orders)
    pool.run([round_(0, [a, b]), round_(1, [a]), round_(2, [b, a])])
    assert out == {0: [[0.0], [0.0]], 1: [[1.0]], 2: [[2.0], [2.0]]}
    passes = [entry for entry in log if entry[0] in ("together", "alone")]
    # first wave: a for 0 and 1 together, b for 2 alone; second: b for 0, a for 2 (one member each)
    assert passes[:2] == [("together", "a", [0, 1]), ("alone", "b", 2)]
    assert sorted(passes[2:]) == [("alone", "a", 2), ("alone", "b", 0)]
    assert pool.shared_passes == 1


class _FakeDrafter:
    """A member that shares drafts: records each shared call's requests."""

    row_invariant = True

    def __init__(self, name, log):
        self.name, self.log = name, log

    def draft_together(self, jobs):
        self.log.append(("drafts", self.name, sorted(session.request for session, *_ in jobs)))


def test_parked_drafts_run_shared_per_member_alongside_parked_scoring():
    log = []
    a, b, scorer = _FakeDrafter("a", log), _FakeDrafter("b", log), _FakeMember("s", log)
    pool = ScoringPool(3)
    out = {}

    def drafting(i, members):
        def run():
            pool.draft([(m, _FakeSession(m, i, log), "", 4, True) for m in members])
            out[i] = pool.score(_FakeSession(scorer, i, log), "", ["x"], "mean")

        return run

    def scoring(i):
        def run():
            out[i] = pool.score(_FakeSession(scorer, i, log), "", ["x"], "mean")

        return run

    # rounds 0 and 1 draft on a (and 0 on b too) while round 2 scores: one wave runs the shared drafts on
    # a (b has one call: left to its round) and round 2's pass; the next wave scores 0 and 1 together
    pool.run([drafting(0, [a, b]), drafting(1, [a]), scoring(2)])
    assert out == {0: [0.0], 1: [1.0], 2: [2.0]}
    work = [entry for entry in log if entry[0] in ("drafts", "together", "alone")]
    assert work == [("drafts", "a", [0, 1]), ("alone", "s", 2), ("together", "s", [0, 1])]
    assert pool.shared_drafts == 1 and pool.shared_passes == 1 and pool.draft_seconds > 0


def test_an_error_in_a_round_does_not_stall_the_others():
    log = []
    a = _FakeMember("a", log)
    pool = ScoringPool(3)
    got = {}

    def failing():
        raise RuntimeError("round failed before scoring")

    def scoring(i):
        def run():
            got[i] = pool.score(_FakeSession(a, i, log), "", ["x"], "mean")

        return run

    def guarded(work):
        def run():
            try:
                work()
            except RuntimeError as error:
                got["error"] = str(error)

        return run

    done = threading.Event()
    thread = threading.Thread(target=lambda: (pool.run([scoring(0), guarded(failing), scoring(2)]), done.set()))
    thread.start()
    assert done.wait(10)
    assert got == {0: [0.0], 2: [2.0], "error": "round failed before scoring"}


class _Stop(BaseException):
    """Something other than an Exception escaping model code (as SystemExit would)."""


def test_parked_rounds_are_released_whatever_stops_the_passes():
    log = []

    class Exploding(_FakeMember):
        def score_together(self, jobs):
            raise _Stop()

    member = Exploding("a", log)
    pool = ScoringPool(2)
    caught = []

    def round_(i):
        def run():
            try:
                pool.score(_FakeSession(member, i, log), "", ["x"], "mean")
            except _Stop:
                caught.append(i)

        return run

    done = threading.Event()
    threading.Thread(target=lambda: (pool.run([round_(0), round_(1)]), done.set()), daemon=True).start()
    assert done.wait(10)
    assert sorted(caught) == [0, 1]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_parked_round_wakes_when_the_passes_a_finishing_round_started_raise():
    """Round 0 parks drafts; round 1 finishes, which starts the parked work from its own exit, and the
    shared drafts raise there: round 0 must still wake (with the error) and the pool must return."""
    log = []

    class Exploding(_FakeDrafter):
        def draft_together(self, jobs):
            raise _Stop()

    member = Exploding("a", log)
    pool = ScoringPool(2)
    caught = []

    def parking():
        try:
            pool.draft([(member, _FakeSession(member, 0, log), "", 4, True), (member, _FakeSession(member, 9, log), "", 4, True)])
        except _Stop:
            caught.append(0)

    done = threading.Event()
    threading.Thread(target=lambda: (pool.run([parking, lambda: None]), done.set()), daemon=True).start()
    assert done.wait(10)
    assert caught == [0]


def test_a_request_that_cannot_plan_its_drafts_does_not_stop_the_batchs_shared_drafts():
    """``planned_drafts`` may raise (nobody left to draft): that request is left to raise in its own
    round; the other requests' drafts are still shared."""
    from specfuse_core.shared_drafts import share_drafts

    log = []
    member = _FakeDrafter("a", log)

    class Request:
        def __init__(self, index, broken=False):
            self._lock, self.done, self.index, self.broken = threading.Lock(), False, index, broken

        def planned_drafts(self):
            if self.broken:
                raise RuntimeError("nobody left to draft")
            return [(member, _FakeSession(member, self.index, log), "", 4, True)]

    share_drafts([Request(0), Request(1, broken=True), Request(2)])
    assert log == [("drafts", "a", [0, 2])]


def test_a_request_asking_for_two_rounds_at_once_gets_one_per_batch():
    from specfuse_core.scheduler import RoundScheduler, _Ticket

    scheduler = RoundScheduler(max_batch=4, prepare=lambda requests: None, gather_s=0.0)
    first, second = object(), object()
    tickets = [_Ticket(first), _Ticket(first), _Ticket(second)]
    scheduler._queue.extend(tickets)
    with scheduler._cond:
        batch = scheduler._take_batch()
    assert batch == [tickets[0], tickets[2]]
    assert list(scheduler._queue) == [tickets[1]]
