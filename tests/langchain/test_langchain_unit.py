"""ChatSpecFuse without model work: construction, identity, settings and input conversion."""

from __future__ import annotations

import json
import warnings

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, ChatMessage, FunctionMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_specfuse import ChatSpecFuse
from langchain_specfuse.messages import to_conversation as _to_conversation
from specfuse_core import SegmentEvent
from specfuse_core.integration import segment_record as _record

TINY_MEMBERS = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]


def test_construction_is_lazy_and_defaults_to_the_tiny_preset() -> None:
    model = ChatSpecFuse()
    assert model.preset == "tiny"
    assert not model.is_loaded  # nothing loaded until the first call
    assert model.member_names == TINY_MEMBERS
    assert model.model_name == "specfuse:tiny"


def test_explicit_models_name_the_members_like_the_core_loader(tmp_path) -> None:
    (tmp_path / "SmolLM2-135M.Q4_1.gguf").write_bytes(b"GGUF")  # the files must exist (checked), nothing loads
    (tmp_path / "qwen2.5-0.5b").mkdir()
    (tmp_path / "qwen2.5-0.5b" / "config.json").write_text("{}")
    model = ChatSpecFuse(models=[str(tmp_path / "SmolLM2-135M.Q4_1.gguf"), str(tmp_path / "qwen2.5-0.5b") + "/"])
    assert model.member_names == ["SmolLM2-135M.Q4_1", "qwen2.5-0.5b"]
    assert model.model_name == "specfuse:SmolLM2-135M.Q4_1+qwen2.5-0.5b"
    assert not model.is_loaded


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"preset": "tiny", "models": ["a"]}, "either preset or models"),
        ({"models": []}, "at least one"),
        ({"preset": "huge"}, "no preset named 'huge'"),
        ({"temperature": -1.0}, "temperature"),
        ({"segment_tokens": 0}, "segment_tokens"),
        ({"stop": [""]}, "non-empty"),
        ({"weighting": "votes"}, "weighting"),
        ({"ensemble_kwargs": {"no_such_field": 1}}, "no_such_field"),
        ({"ensemble_kwargs": {"gate_treshold": -0.5}}, "did you mean 'gate_threshold'"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChatSpecFuse(**kwargs)


def test_any_ensemble_config_field_is_accepted_and_other_keywords_warn() -> None:
    model = ChatSpecFuse(exclude_self_vote=True, normalization="rank")
    assert model.ensemble_kwargs == {"exclude_self_vote": True, "normalization": "rank"}
    with pytest.warns(UserWarning, match="ignores api_key, max_retries"):
        ChatSpecFuse(api_key="x", max_retries=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ChatSpecFuse(preset="tiny", max_tokens=8, temperature=0.5, streaming=True)


def test_identifying_and_langsmith_params_are_small_and_serialisable() -> None:
    model = ChatSpecFuse(max_tokens=12, temperature=0.3, seed=7, stop=["\n\n"], weighting="hedge", model_exit=True)
    params = model._identifying_params
    assert params == {
        "model_name": "specfuse:tiny",
        "members": TINY_MEMBERS,
        "preset": "tiny",
        "max_tokens": 12,
        "temperature": 0.3,
        "seed": 7,
        "weighting": "hedge",
        "model_exit": True,
        "stop": ["\n\n"],
    }
    json.dumps(params)
    ls = model._get_ls_params(stop=["END"])
    assert ls["ls_provider"] == "specfuse"
    assert ls["ls_model_name"] == "specfuse:tiny"
    assert ls["ls_model_type"] == "chat"
    assert ls["ls_temperature"] == 0.3
    assert ls["ls_max_tokens"] == 12
    assert ls["ls_stop"] == ["\n\n", "END"]  # field and call stops both apply
    assert ls["ls_ensemble_members"] == TINY_MEMBERS
    json.dumps(ls)
    defaults = ChatSpecFuse()._get_ls_params()
    assert defaults["ls_temperature"] == 0.0 and defaults["ls_max_tokens"] == 256  # the core defaults


def test_call_overrides_are_validated_and_mapped_to_ensemble_config() -> None:
    model = ChatSpecFuse(max_tokens=12, stop=["A"])
    config = model._request_config(["B"], max_tokens=5, temperature=0.7, stream=True)
    assert config.max_new_tokens == 5
    assert config.temperature == 0.7
    assert config.stop == ["A", "B"]
    with pytest.raises(ValueError, match="functions"):
        model._request_config([], functions=[{"name": "x"}])  # legacy function calling: refused, saying why
    with pytest.raises(ValueError, match="unsupported argument.*max_token\\b"):
        model._request_config([], max_token=5)  # a typo is refused, not dropped
    with pytest.raises(ValueError, match="cannot switch models"):
        model._request_config([], model="gpt-4o")
    assert model._request_config([], model="specfuse:tiny").max_new_tokens == 12
    with pytest.raises(ValueError, match="top_p"):
        model._request_config([], top_p=2.0)


def test_messages_convert_to_a_text_conversation() -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage([{"type": "text", "text": "Hi "}, "there"], name="ana"),
        AIMessage("Hello."),
        ChatMessage(role="user", content="Bye?"),
    ]
    assert _to_conversation(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye?"},
    ]


@pytest.mark.parametrize(
    "message, error",
    [
        (FunctionMessage("3", name="f"), "legacy function calling"),
        (ChatMessage(role="critic", content="meh"), "role 'critic'"),
        (HumanMessage([{"type": "image", "url": "https://example.com/cat.png"}]), "text only"),
    ],
)
def test_unsupported_messages_are_refused(message, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        _to_conversation([message])


def test_provenance_records_survive_chunk_merging() -> None:
    """Per-segment records are lists (extended on merge); strings and ints appear once, on the last chunk."""
    events = [
        SegmentEvent(text="Hel", segment="Hel", round=1, member="a", proposers=["a", "b"],
                     scores={"a": 0.6, "b": 0.6, "c": 0.4}, active_members=["a", "b", "c"]),
        SegmentEvent(text="lo", segment="lo", round=2, member="c", proposers=["c"],
                     scores={"a": 0.3, "c": 0.7}, active_members=["a", "c"], finish_reason="stop"),
    ]
    chunks = [
        AIMessageChunk(content=e.text, response_metadata={"model_provider": "specfuse", "segments": [_record(e)]})
        for e in events
    ]
    chunks[-1].response_metadata.update({"model_name": "specfuse:tiny", "finish_reason": "stop",
                                         "trace": {"rounds": 2, "wins": {"a": 1, "c": 1}, "exited": ["b"]}})
    merged = chunks[0] + chunks[1]
    assert merged.content == "Hello"
    meta = merged.response_metadata
    assert [r["member"] for r in meta["segments"]] == ["a", "c"]
    assert [r["round"] for r in meta["segments"]] == [1, 2]
    assert meta["segments"][0]["scores"] == {"a": 0.6, "b": 0.6, "c": 0.4}
    assert meta["model_provider"] == "specfuse"
    assert meta["model_name"] == "specfuse:tiny"
    assert meta["trace"]["rounds"] == 2


def test_timeout_is_the_per_request_time_limit() -> None:
    """LangChain's usual ``timeout`` field is the core's ``timeout_s``; a call may override it."""
    model = ChatSpecFuse(timeout=2.5)
    assert model._request_config(None).timeout_s == 2.5
    assert model._request_config(None, timeout=0.5).timeout_s == 0.5
    with pytest.raises(ValueError, match="timeout_s"):
        ChatSpecFuse(timeout=-1)


class _CharMember:
    """One character per token; its prompt wraps each message in a role tag (a stand-in chat template)."""

    name = "chars"
    context_window = 4096
    device = "cpu"

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def prompt_ids(self, conversation: list[dict[str, str]]) -> list[int]:
        return self.encode("".join(f"<{m['role']}>{m['content']}" for m in conversation) + "<assistant>")


def _counting_model() -> ChatSpecFuse:
    from specfuse_core import SpecFuse

    return ChatSpecFuse(ensemble=SpecFuse([_CharMember()]))  # the counting member's tokenizer, without weights


def test_token_counts_use_the_ensembles_tokenizer_not_gpt2() -> None:
    """Issue 13: LangChain's GPT-2 fallback counted 0 tokens offline, so trim_messages kept everything."""
    model = _counting_model()
    assert model.get_token_ids("hi there") == [ord(c) for c in "hi there"]
    assert model.get_num_tokens("hi there") == 8
    messages = [SystemMessage("sys"), HumanMessage("hello"), AIMessage("yo")]
    assert model.get_num_tokens_from_messages(messages) == len("<system>sys<user>hello<assistant>yo<assistant>")
    assert model.get_num_tokens_from_messages([]) == 0
    assert model.get_num_tokens_from_messages(messages, tools=[{"name": "f"}]) >= model.get_num_tokens_from_messages(messages)
    custom = ChatSpecFuse(custom_get_token_ids=lambda text: [0, 1])
    assert custom.get_num_tokens("anything") == 2  # a user-supplied counter still wins, without loading


def test_trim_messages_with_the_model_as_counter_trims() -> None:
    from langchain_core.messages import trim_messages

    model = _counting_model()
    history = [SystemMessage("Be brief.")] + [
        message for i in range(10) for message in (HumanMessage(f"question {i}"), AIMessage(f"answer {i}"))
    ] + [HumanMessage("last question")]
    kept = trim_messages(history, max_tokens=100, token_counter=model, strategy="last", include_system=True, start_on="human")
    assert kept[0] == history[0] and kept[-1] == history[-1]
    assert len(kept) < len(history)
    assert model.get_num_tokens_from_messages(kept) <= 100


@pytest.mark.parametrize("prompt", ["", "  \n", [HumanMessage("")]])
def test_an_empty_question_is_refused(prompt) -> None:
    """Issue 13 item 4: an empty prompt was answered with a canned greeting."""
    from specfuse_core import InvalidConversationError

    with pytest.raises(InvalidConversationError, match="empty or only whitespace"):
        _counting_model().invoke(prompt)


def test_tools_and_structured_output_bind_without_loading() -> None:
    """bind_tools and with_structured_output only bind arguments: nothing loads until a call."""
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    model = ChatSpecFuse()
    bound = model.bind_tools([Answer], tool_choice="any")
    assert bound.kwargs["tools"][0]["function"]["name"] == "Answer" and bound.kwargs["tool_choice"] == "any"
    model.with_structured_output(Answer)
    with pytest.raises(ValueError, match="method"):
        model.with_structured_output(Answer, method="xml")
    assert not model.is_loaded  # nothing was loaded to learn it
