"""Property-based tests of text alignment (hypothesis).

1. Engine level (scripted members, no tokenizer): for any segment sequence, the output is exactly the
   concatenation of the accepted segments, the streamed texts concatenate to it, stop strings cut it
   at their first occurrence and are never streamed, and no U+FFFD appears that no segment held.
2. Member level (random-weight members, real tokenizers): driving a LocalSession through score /
   accept / draft with arbitrary segment texts, its token view always decodes back to the response
   (or its NFC form, for tokenizers that normalise), its cache length matches its token
   bookkeeping, and after a re-sync its next-token distribution equals a fresh forward pass.
"""

from __future__ import annotations

import unicodedata

import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from specfuse_core import Candidate, EnsembleConfig, SpecFuse
from specfuse_core.kv_cache import cache_length
from specfuse_core import Sampling

from .reliability_fakes import ScriptedMember

PIECES = [
    " ", "  ", "\n", "\n\n", "\t", "a", "Hello", " world", ",", ".", "é", "e\u0301", "日本語", "中文", "한국어",
    "👍", "👍🏽", "🇫🇷", "👨\u200d👩\u200d👧", "\u200b", "\ufeff", "\u00a0", "<|im_end|>", "<eos>", "<start_of_turn>",
    "\\n", "'", '"', "—", "ß", "ﬁ", "Ⅻ", "\x00", "\x1b", "\ufffd",
]
TEXT = st.one_of(
    # any assigned code point (unassigned planes are beyond some tokenizers: SmolLM2's turns U+40000 into U+FFFD)
    st.text(st.characters(exclude_categories=("Cs", "Cn")), min_size=1, max_size=12),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=4).map("".join),
)
SEGMENTS = st.lists(TEXT, min_size=1, max_size=5)
QUESTION = [{"role": "user", "content": "Say anything."}]


# ---------------------------------------------------------------- engine level
@settings(max_examples=60, deadline=None)
@given(a=SEGMENTS, b=SEGMENTS, data=st.data())
def test_output_is_the_concatenation_of_accepted_segments(a, b, data):
    prefer_b = data.draw(st.booleans())
    prefer = (lambda text: float(text in b)) if prefer_b else None
    stream = SpecFuse([ScriptedMember("a", a, prefer=prefer), ScriptedMember("b", b, prefer=prefer)], EnsembleConfig()).stream(QUESTION)
    events = list(stream)
    result = stream.result()
    accepted = "".join(e.segment for e in events)
    assert result.text == accepted == "".join(e.text for e in events)
    assert [e.segment for e in events] == [r.candidates[r.winner].text for r in result.trace.rounds]
    if "\ufffd" in result.text:
        assert any("\ufffd" in s for s in a + b)


@settings(max_examples=60, deadline=None)
@given(segments=SEGMENTS, data=st.data())
def test_stop_strings_cut_at_their_first_occurrence_and_never_stream(segments, data):
    whole = "".join(segments)
    start = data.draw(st.integers(0, len(whole) - 1))
    stop = whole[start : start + data.draw(st.integers(1, 4))]
    stream = SpecFuse([ScriptedMember("a", segments)], EnsembleConfig(stop=[stop])).stream(QUESTION)
    texts = [e.text for e in stream]
    result = stream.result()
    assert result.text == whole[: whole.index(stop)] == "".join(texts)
    assert result.finish_reason == "stop_sequence"
    for i in range(len(texts)):  # no prefix of the stream ever showed the stop string
        assert stop not in "".join(texts[: i + 1])


# ---------------------------------------------------------------- member level
def _decoded_view(session) -> str:
    return session.member.tokens.continuation(session.prompt_ids, session.response_ids)


def _check_view(session, member, response: str) -> None:
    session.count_tokens(response)  # brings the token view up to date, as the engine does
    decoded = _decoded_view(session)
    # exactly the text, or its NFC form where the tokenizer normalises (Qwen2's does)
    assert decoded in (response, unicodedata.normalize("NFC", response)), (decoded, response)
    assert cache_length(session.cache) == len(session.cached_ids)


@pytest.mark.parametrize("name", ["llama", "qwen2", "gemma3"])
def test_token_view_resyncs_without_losing_or_duplicating_characters(random_members, name):
    member = random_members[name]
    expressible: dict[str, bool] = {}

    def can_express(ch: str) -> bool:
        """Whether the tokenizer can spell this character at all. A few cannot (SmolLM2's GGUF vocabulary
        drops some C0 controls, Gemma's reads U+2581 as a space): no re-sync can keep those."""
        if ch not in expressible:
            expressible[ch] = member.decode(member.encode(ch)) in (ch, unicodedata.normalize("NFC", ch))
        return expressible[ch]

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(steps=st.lists(st.one_of(st.none(), TEXT), min_size=1, max_size=4), rival=TEXT)
    # Regression (issue 13): a no-break space (bytes C2 A0 as Gemma byte-fallback tokens), then the
    # random Gemma member drafts lone continuation bytes; its own tokens were kept as the view although,
    # after the context, they turn the no-break space into two U+FFFD.
    @example(steps=["\U0001F1EB\xa0", None], rival="a")
    def run(steps, rival):
        # None: the member's own draft wins; text: another member's segment wins after scoring
        assume(all(can_express(ch) for step in steps if step for ch in step))
        session = member.start(QUESTION, Sampling())
        response = ""
        try:
            for step in steps:
                if step is None:
                    draft = session.draft(response, 3)
                    if not draft.text:
                        continue
                    response += draft.text
                    session.accept(response, None, own_draft=True)
                else:
                    session.score(response, [Candidate(step, False), Candidate(rival, True)])
                    response += step
                    session.accept(response, 0, own_draft=False)
                _check_view(session, member, response)
            # one more draft re-syncs the cache to the token view: its distribution must equal a fresh pass
            session.draft(response, 1)
            context = session._draft_record.context
            assert context == session.prompt_ids + session.response_ids
            assert session.cached_ids[: len(context)] == context
            with torch.inference_mode():
                fresh = member.model(input_ids=torch.tensor([context])).logits[0, -1].float().log_softmax(-1)
            torch.testing.assert_close(session._draft_record.context_logprobs, fresh, atol=2e-4, rtol=1e-4)
        finally:
            session.close()

    run()
