"""Segment-boundary and stop-string rules, with property tests over arbitrary text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from specfuse_core.text_align import before_broken_bytes, cut_to_word_boundary, repetition_share, stop_holdback, stop_position


def test_cut_leaves_the_space_for_the_next_word():
    assert cut_to_word_boundary("The cat sa", finished=False) == "The cat"


def test_cut_keeps_a_newline():
    assert cut_to_word_boundary("line one\nnex", finished=False) == "line one\n"


def test_no_cut_after_punctuation_or_whitespace():
    assert cut_to_word_boundary("It ended.", finished=False) == "It ended."
    assert cut_to_word_boundary("Trailing ", finished=False) == "Trailing "


def test_no_whitespace_keeps_the_text_whole():
    assert cut_to_word_boundary("Supercalifragilistic", finished=False) == "Supercalifragilistic"
    assert cut_to_word_boundary("日本語のテキスト", finished=False) == "日本語のテキスト"


def test_finished_text_is_never_cut():
    assert cut_to_word_boundary("The end is nea", finished=True) == "The end is nea"


def test_cut_that_would_leave_nothing_keeps_whole():
    assert cut_to_word_boundary(" word", finished=False) == " word"


def test_stop_position_finds_earliest():
    assert stop_position("abc STOP def END", ["END", "STOP"]) == 4
    assert stop_position("abc", ["x"]) is None
    assert stop_position("xx STOP", ["STOP"], start=4) is None


def test_holdback_covers_a_partial_stop():
    assert stop_holdback("answer: 42\n", ["\nQ:"]) == 1
    assert stop_holdback("answer: 42\nQ", ["\nQ:"]) == 2
    assert stop_holdback("answer", ["\nQ:"]) == 0


def test_repetition_share():
    # 3-grams joined onto the history's last two words: (the mat the), (mat the cat) are new,
    # (the cat sat), (cat sat on) repeat
    assert repetition_share(" the cat sat on", "the cat sat on the mat") == 0.5
    assert repetition_share(" purple elephants dance", "the cat sat") == 0.0


@given(st.text(), st.booleans())
def test_cut_is_a_prefix_and_never_adds_replacement_chars(text, finished):
    cut = cut_to_word_boundary(text, finished)
    assert text.startswith(cut)
    assert cut.count("\ufffd") <= text.count("\ufffd")
    assert cut or not text


@settings(max_examples=200)
@given(st.lists(st.text(min_size=1), min_size=1, max_size=8), st.lists(st.text(min_size=1, max_size=4), max_size=3))
def test_streaming_with_holdback_releases_exactly_the_text_before_the_stop(segments, stops):
    """Simulate the engine's release rule: whatever the segments, the released text is exactly the
    final text (cut before the first stop), and no released prefix ever contains a stop string."""
    response, released = "", ""
    final = None
    for segment in segments:
        previous = len(response)
        response += segment
        cut = stop_position(response, stops, start=max(0, previous - max((len(s) for s in stops), default=1) + 1))
        if cut is not None:
            final = response[:cut]
            released += final[len(released) :]
            break
        visible = len(response) - stop_holdback(response, stops)
        released += response[len(released) : max(len(released), visible)]
        assert not any(stop in released for stop in stops)
    if final is None:
        final = response
        released += response[len(released) :]
    assert released == final
    assert stop_position(final, stops) is None


def test_a_draft_ends_before_bytes_that_cannot_be_mended():
    assert before_broken_bytes("Hi\ufffdthere", True) == ("Hi", False)
    assert before_broken_bytes("\ufffdabc", False) == ("", False)
    assert before_broken_bytes("Hi there", True) == ("Hi there", True)
