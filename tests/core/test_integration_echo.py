"""The real tiny preset on a question its base model answers by echoing it: the ensemble, with the
preset's shipped calibration, answers instead of copying (issue: likelihood rewards the echo)."""

from __future__ import annotations

import pytest

from specfuse_core import SpecFuse
from specfuse_core.evaluation.copying import copies_prompt

pytestmark = pytest.mark.integration

QUESTION = "How many minutes are there in an hour?"  # dev set fact-45; Gemma-3-270M (base) repeats it


def test_the_base_models_echo_is_not_the_answer(tiny_ensemble):
    gemma = next(m for m in tiny_ensemble.members if m.name == "gemma3-270m")
    alone = SpecFuse([gemma]).generate(QUESTION, max_new_tokens=24)
    assert copies_prompt(alone.text, QUESTION), f"the base model no longer echoes this question: {alone.text!r}"

    answer = tiny_ensemble.generate(QUESTION, max_new_tokens=24)
    assert tiny_ensemble.calibration is not None
    assert not copies_prompt(answer.text, QUESTION), answer.text
    assert "60" in answer.text, answer.text
    assert answer.usage.members["gemma3-270m"].drafted_tokens == 0  # the shipped calibration: the base model only verifies
    # the router's nearest labelled prompt is this very question (Qwen right alone, SmolLM2 wrong):
    # Qwen leads and its segments are the answer, with no vote needed
    assert set(answer.trace.wins) == {"qwen2.5-coder-0.5b"}
    assert all(r.gated or len(r.candidates) == 1 for r in answer.trace.rounds)
