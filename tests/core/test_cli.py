from __future__ import annotations

import pytest

from specfuse_core.cli import main


def test_bad_settings_exit_2_with_a_message(capsys):
    assert main(["chat", "hi", "--temperature", "-1"]) == 2
    assert "temperature" in capsys.readouterr().err


def test_unknown_preset_exits_2(capsys):
    assert main(["chat", "hi", "--preset", "nope"]) == 2
    assert "no preset named 'nope'" in capsys.readouterr().err


@pytest.mark.integration
def test_chat_streams_the_answer_and_prints_a_trace(capsys, tiny_ensemble):
    assert main(["chat", "What is the capital of France? Answer in one sentence.", "--max-tokens", "16", "--trace"]) == 0
    captured = capsys.readouterr()
    assert "Paris" in captured.out
    assert "rounds" in captured.err and "finish_reason=" in captured.err
