"""A plain-format member's end of turn ("\\nUser:") ends the request even when the accepted segments
split it (issue 13: Gemma won "...sea.\\n\\n" and then "User:Write a short line", and the fake user
turn reached the answer)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.prompt_format import PlainPromptFormat
from specfuse_core.text_align import end_of_turn_holdback, end_of_turn_position

from .reliability_fakes import ScriptedMember

ENDS = PlainPromptFormat().stop_strings  # ("\nUser:", "\nSystem:")


def _run(segments, ends=ENDS, **config):
    stream = SpecFuse([ScriptedMember("plain", segments, end_of_turn_texts=ends)], EnsembleConfig(**config)).stream("Hi")
    events = list(stream)
    return events, stream.result()


def test_end_of_turn_split_across_two_segments_ends_the_answer():
    events, result = _run(["Write a short line about the sea.\n\n", "User:Write a short line", " more"])
    assert result.text == "Write a short line about the sea."
    assert result.finish_reason == "stop"
    assert len(events) == 2  # the third segment is never drafted
    assert [e.text for e in events] == ["Write a short line about the sea.", ""]  # "\n\n" was held back
    assert "".join(e.text for e in events) == result.text


@pytest.mark.parametrize(
    "segments",
    [
        ["One.\n", "\nUs", "er: again"],  # split three ways
        ["One.", "\n", "\n", "System: x"],  # the other end text, newlines in their own segments
        ["One.\nUser:"],  # inside one segment (a chat member may write it)
    ],
)
def test_end_of_turn_found_wherever_the_segments_split_it(segments):
    events, result = _run(segments)
    assert result.text == "One."
    assert result.finish_reason == "stop"
    assert "".join(e.text for e in events) == result.text


def test_newlines_not_followed_by_an_end_of_turn_are_released_later():
    events, result = _run(["Line one.\n\n", "Line two."])
    assert [e.text for e in events] == ["Line one.", "\n\nLine two."]
    assert result.text == "Line one.\n\nLine two."


def test_without_a_plain_format_member_the_text_is_kept():
    _, result = _run(["Dialogue:\n", "User: hi"], ends=())
    assert result.text == "Dialogue:\nUser: hi"


def test_a_stop_string_before_the_end_of_turn_wins():
    events, result = _run(["Answer: 4. Done\n", "User: next"], stop=["Done"])
    assert (result.text, result.finish_reason) == ("Answer: 4. ", "stop_sequence")


def test_position_and_holdback():
    assert end_of_turn_position("sea.\n\nUser: x", ENDS) == 4
    assert end_of_turn_position("sea.\n\nUser: x", ENDS, floor=5) == 5  # released text stays
    assert end_of_turn_position("sea.\n\nUser", ENDS) is None
    assert end_of_turn_holdback("sea.\n\n", ENDS) == 2
    assert end_of_turn_holdback("sea.\n\nUse", ENDS) == 5
    assert end_of_turn_holdback("sea.\nX", ENDS) == 0
    assert end_of_turn_holdback("sea.", ENDS) == 0


@settings(max_examples=80, deadline=None)
@given(
    before=st.text(st.sampled_from("ab .\n"), max_size=12),
    after=st.text(st.sampled_from("ab .\n"), max_size=6),
    cuts=st.lists(st.integers(0, 40), max_size=4),
)
def test_any_split_of_a_text_ending_the_turn_gives_the_text_before_it(before, after, cuts):
    whole = before + "\nUser:" + after
    bounds = sorted({0, len(whole), *(c for c in cuts if c < len(whole))})
    segments = [whole[a:b] for a, b in zip(bounds, bounds[1:])]
    events, result = _run(segments)
    assert result.text == before.rstrip("\n")  # the newlines before the end text go with it
    assert result.finish_reason == "stop"
    shown = ""
    for event in events:  # no prefix of the stream ever shows the end text
        shown += event.text
        assert "\nUser:" not in shown
    assert shown == result.text
