"""IFEval scoring with the maintained scorer on real records and hand-made answers."""

from __future__ import annotations

import pytest

from specfuse_core.evaluation.ifeval import bundled_nltk_data, check_ifeval


def test_no_comma_strict(ifeval_records):
    record = ifeval_records[1001]  # punctuation:no_comma
    assert check_ifeval("Thou shalt fly to Tokyo. Then on to Kyoto.", record).correct
    failed = check_ifeval("Thou shalt fly to Tokyo, then to Kyoto.", record)
    assert failed.correct is False and failed.details["strict"] == [False]


def test_lowercase_and_loose_vs_strict(ifeval_records):
    record = ifeval_records[1019]  # change_case:english_lowercase
    assert record["instruction_id_list"] == ["change_case:english_lowercase"]
    assert check_ifeval("this answer is written entirely in lowercase english letters.", record).correct
    assert check_ifeval("This Answer Has Capitals in it.", record).correct is False


def test_multi_instruction_record_passes_some(ifeval_records):
    record = ifeval_records[1000]  # no_comma, 3 highlighted sections, at least 300 words
    short = "Raymond was a count. *Early life* *Reign* *Legacy* He ruled Tripoli."
    result = check_ifeval(short, record)
    assert result.details["strict"] == [True, True, False]  # too short for 300 words
    assert result.correct is False
    long = " ".join(["word"] * 310) + " *one* *two* *three*"
    assert check_ifeval(long, record).details["strict"] == [True, True, True]


def test_loose_forgives_a_markdown_first_line(ifeval_records):
    record = ifeval_records[1019]
    answer = "Sure! Here it is:\nthis answer is all lowercase."
    result = check_ifeval(answer, record)
    assert result.details["prompt_strict"] is False
    assert result.details["prompt_loose"] is True


@pytest.mark.parametrize("empty", ["", "   \n  "])
def test_empty_answer_fails_every_instruction(ifeval_records, empty):
    record = ifeval_records[1000]
    result = check_ifeval(empty, record)
    assert result.correct is False
    assert result.details["strict"] == [False, False, False]
    assert result.details["loose"] == [False, False, False]


def test_sentence_counting_uses_bundled_punkt(ifeval_records):
    """Sentence-count instructions need NLTK punkt_tab, found in llama-index-core's wheel (no download)."""
    assert bundled_nltk_data() is not None
    record = next(r for r in ifeval_records.values() if r["instruction_id_list"] == ["length_constraints:number_sentences"])
    kwargs = record["kwargs"][0]
    n, relation = kwargs["num_sentences"], kwargs["relation"]
    sentences = n if relation == "at least" else max(1, n - 1)
    ok = " ".join(f"This is sentence number {i}." for i in range(sentences))
    assert check_ifeval(ok, record).correct
    bad_count = n + 5 if relation != "at least" else max(1, n - 1)
    if bad_count != sentences:
        bad = " ".join(f"This is sentence number {i}." for i in range(bad_count))
        assert check_ifeval(bad, record).correct is False


def test_scores_repeat(ifeval_records):
    record = ifeval_records[1019]
    answers = ["this is lowercase english text about a topic.", "Ceci est du texte."]
    first = [check_ifeval(a, record).details for a in answers]
    assert first == [check_ifeval(a, record).details for a in answers]
