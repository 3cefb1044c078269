"""``specfuse eval`` rejects bad input with exit status 2 and a message, before loading any model."""

from __future__ import annotations

import pytest

from specfuse_core.cli import build_parser, main
from specfuse_core.evaluation.command import parse_member_options, parse_overrides


def test_unknown_dataset_exits_2(tmp_path, capsys):
    assert main(["eval", "--dataset", "mmlu", "--out", str(tmp_path / "o")]) == 2
    assert "unknown dataset 'mmlu'" in capsys.readouterr().err


def test_missing_data_dir_exits_2(tmp_path, capsys):
    assert main(["eval", "--dataset", "gsm8k", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "grade-school-math" in capsys.readouterr().err


def test_bad_limit_and_bad_override(tmp_path):
    assert main(["eval", "--dataset", "gsm8k", "--limit", "0", "--out", str(tmp_path / "o")]) == 2
    assert main(["eval", "--dataset", "gsm8k", "--set", "no_such_field=1", "--out", str(tmp_path / "o")]) == 2


def test_parse_overrides():
    assert parse_overrides(["score_temperature=0.5", "normalization=rank", "exclude_self_vote=true"]) == {
        "score_temperature": 0.5, "normalization": "rank", "exclude_self_vote": True,
    }
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["oops"])


def test_member_options_are_parsed_and_checked_before_any_model_loads(tmp_path, capsys):
    assert parse_member_options(["onednn_hidden_layers=false", "dtype=bfloat16", "decode_block=8"]) == {
        "onednn_hidden_layers": False, "dtype": "bfloat16", "decode_block": 8,
    }
    with pytest.raises(ValueError, match="OPTION=VALUE"):
        parse_member_options(["oops"])
    assert main(["eval", "--dataset", "gsm8k", "--member-option", "trust_remote_code=true", "--out", str(tmp_path / "o")]) == 2
    assert "unknown option 'trust_remote_code'" in capsys.readouterr().err


def test_chat_is_unchanged():
    args = build_parser().parse_args(["chat", "hi", "--max-tokens", "5"])
    assert args.command == "chat" and args.question == "hi" and args.max_tokens == 5
