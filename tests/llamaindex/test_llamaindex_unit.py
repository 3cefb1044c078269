"""Fast tests of SpecFuseLLM without model weights: metadata, configuration, message formatting,
responses and errors. The ensemble is made of scripted fake members (see llamaindex_fakes.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from llama_index.core import Settings
from llama_index.core.base.llms.types import (
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
)
from llama_index.core.callbacks.token_counting import get_tokens_from_response
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts import PromptTemplate
from pydantic import ValidationError

from llamaindex_specfuse import SpecFuseLLM, to_core_messages
from specfuse_core import EnsembleConfig
from specfuse_core.errors import ContextWindowExceededError, InvalidConversationError, PresetNotFoundError

from llamaindex_fakes import expected_segments, fake_llm

SCRIPT = "Hello there, general Kenobi."


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def system(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.SYSTEM, content=text)


# ---------------------------------------------------------------------- class and fields
def test_is_a_native_llm_not_custom_llm():
    from llama_index.core.llms.custom import CustomLLM

    assert issubclass(SpecFuseLLM, LLM)
    assert not issubclass(SpecFuseLLM, CustomLLM)
    for name in ("chat", "complete", "stream_chat", "stream_complete", "achat", "acomplete", "astream_chat", "astream_complete"):
        assert name in SpecFuseLLM.__dict__, f"{name} must be implemented natively"
    assert SpecFuseLLM.class_name() == "SpecFuseLLM"


def test_every_ensemble_setting_is_accepted_by_name_with_the_core_default():
    """Config is exposed, not copied: a few typed fields, any other EnsembleConfig field by name (it
    lands in additional_kwargs), every default the core's."""
    llm = SpecFuseLLM(context_window=4096)
    assert llm.ensemble_config() == EnsembleConfig()
    custom = EnsembleConfig(
        segment_tokens=6, max_new_tokens=64, max_rounds=9, temperature=0.5, top_p=0.9, top_k=4, seed=1, stop=["##"],
        normalization="rank", score_temperature=2.0, weighting="hedge", hedge_learning_rate=0.5, persist_weights=True,
        exclude_self_vote=True, vote_statistic="min", repetition_penalty=0.1, end_of_turn_scoring="text_only", consensus_weight=0.2, contrast_weight=0.3, contrast_rounds=2, no_repeat_ngram_size=5,
        member_weights={"a": 2.0}, roles={"a": "verify"}, gate_threshold=-0.5, gate_check_threshold=-2.0, gate_check_statistic="min", gate_check_rounds=3, gate_check_tokens=50, lead_member="a",
        counting_member="a", model_exit=True,
        exit_warmup_rounds=2, exit_temperature=0.5, exit_threshold=0.1, min_members=2, exited_members_verify=True,
        context_overflow="skip_member", timeout_s=3.0, max_batch_requests=4, pooled_scoring=False, pooled_drafting=False,
    )
    assert set(custom.model_fields_set) == set(EnsembleConfig.model_fields), "give every field a non-default value"
    llm = SpecFuseLLM(context_window=4096, **custom.model_dump())
    assert llm.ensemble_config() == custom
    assert llm.additional_kwargs["gate_threshold"] == -0.5 and llm.max_new_tokens == 64
    with pytest.raises(ValidationError, match="no_such_field"):
        SpecFuseLLM(additional_kwargs={"no_such_field": 1})
    with pytest.raises(ValidationError, match="did you mean 'segment_tokens'"):
        SpecFuseLLM(additional_kwargs={"segment_token": 6})


def test_fields_build_the_request_config_and_calls_override_them():
    llm = SpecFuseLLM(max_new_tokens=64, segment_tokens=6, temperature=0.7, top_p=0.9, seed=3, stop=["\n\n"], weighting="hedge", model_exit=True)
    config = llm.ensemble_config()
    assert (config.max_new_tokens, config.segment_tokens, config.temperature, config.top_p, config.seed) == (64, 6, 0.7, 0.9, 3)
    assert config.stop == ["\n\n"] and config.weighting == "hedge" and config.model_exit
    assert llm.ensemble_config(max_new_tokens=8).max_new_tokens == 8


def test_construction_does_not_load_models():
    llm = SpecFuseLLM(preset="tiny")
    assert not llm.is_loaded
    payload = llm.to_payload()
    assert not llm.is_loaded, "the event payload must never trigger loading"
    assert payload["model_name"] == "specfuse:tiny"  # the name ChatSpecFuse reports too
    assert "context_window" not in payload
    assert payload["num_output"] == llm.max_new_tokens and payload["is_chat_model"] is True


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"temperature": -0.5}, ValidationError),
        ({"top_p": 0.0}, ValidationError),
        ({"segment_tokens": 0}, ValidationError),
        ({"max_new_tokens": 0}, ValidationError),
        ({"weighting": "majority"}, ValidationError),
        ({"stop": [""]}, ValidationError),
        ({"models": []}, ValidationError),
        ({"preset": "no-such-preset"}, PresetNotFoundError),
        ({"preset": None}, ValueError),
    ],
)
def test_bad_settings_fail_at_construction(kwargs, error):
    with pytest.raises(error):
        SpecFuseLLM(**kwargs)


def test_model_name_of_explicit_models(tmp_path):
    (tmp_path / "Qwen2.5-0.5B-Instruct").mkdir()
    (tmp_path / "Qwen2.5-0.5B-Instruct" / "config.json").write_text("{}")
    (tmp_path / "smol.Q4_1.gguf").write_bytes(b"GGUF")  # the files must exist (checked), nothing loads
    llm = SpecFuseLLM(models=[str(tmp_path / "Qwen2.5-0.5B-Instruct"), str(tmp_path / "smol.Q4_1.gguf")], context_window=2048)
    assert llm.model_name == "specfuse:Qwen2.5-0.5B-Instruct+smol.Q4_1"
    assert llm.metadata.model_name == llm.model_name


def test_serialises_without_model_objects():
    llm = SpecFuseLLM(preset="tiny", max_new_tokens=32, stop=["###"], system_prompt="Be terse.")
    data = json.loads(llm.to_json())
    assert data["class_name"] == "SpecFuseLLM"
    assert data["preset"] == "tiny" and data["max_new_tokens"] == 32 and data["stop"] == ["###"]
    assert data["system_prompt"] == "Be terse."


def test_settings_llm_accepts_it():
    llm, _ = fake_llm()
    previous = Settings._llm
    try:
        Settings.llm = llm
        assert Settings.llm is llm
    finally:
        Settings._llm = previous


def test_tokenizer_counts_in_the_ensembles_tokens():
    """Issue 13: LlamaIndex counted with tiktoken; ``llm.tokenizer`` counts with the counting member."""
    from llama_index.core.callbacks import TokenCountingHandler
    from llama_index.core.utilities.token_counting import TokenCounter

    llm, _ = fake_llm()  # scripted members: one character = one token
    assert llm.tokenizer("héllo 👍") == [ord(c) for c in "héllo 👍"]
    assert llm.count_tokens("abc") == 3
    import llama_index.core

    previous = llama_index.core.global_tokenizer
    try:
        Settings.tokenizer = llm.tokenizer
        assert TokenCounter().get_string_tokens("twelve chars") == 12  # LlamaIndex's own counter uses it
    finally:
        llama_index.core.global_tokenizer = previous
    handler = TokenCountingHandler(tokenizer=llm.tokenizer)
    assert handler.tokenizer("abcd") == [97, 98, 99, 100]


def test_tokenizer_does_not_load_until_called():
    llm = SpecFuseLLM(preset="tiny")
    tokenizer = llm.tokenizer
    assert callable(tokenizer) and not llm.is_loaded


# ---------------------------------------------------------------------- metadata
def test_metadata_reserves_what_generation_needs():
    llm, members = fake_llm(max_new_tokens=100, segment_tokens=8, member_window=3000)
    meta = llm.metadata
    assert meta.context_window == 3000 - (100 + 4 * 8)
    assert meta.num_output == 100
    assert meta.is_chat_model is True and meta.is_function_calling_model is True
    assert meta.model_name == "specfuse:alpha+beta+gamma"
    assert meta.system_role == MessageRole.SYSTEM


def test_metadata_uses_the_smallest_member_window():
    llm, members = fake_llm(max_new_tokens=10, segment_tokens=5)
    members[1].context_window = 1000
    assert llm.metadata.context_window == 1000 - 10 - 20


def test_metadata_follows_field_changes():
    llm = SpecFuseLLM(context_window=8192, max_new_tokens=24, segment_tokens=10)
    assert llm.metadata.context_window == 8192 - 64
    llm.max_new_tokens = 200
    assert llm.metadata.context_window == 8192 - 240 and llm.metadata.num_output == 200


def test_metadata_refuses_a_window_with_no_room_for_a_prompt():
    llm = SpecFuseLLM(context_window=100, max_new_tokens=90, segment_tokens=10)
    with pytest.raises(ValueError, match="no room"):
        _ = llm.metadata


# ---------------------------------------------------------------------- message formatting
def test_roles_and_blocks_map_to_core_messages():
    messages = [
        ChatMessage(role=MessageRole.DEVELOPER, content="Rule one."),
        system("Rule two."),
        user("Hi"),
        ChatMessage(role=MessageRole.MODEL, content="Hello"),
        ChatMessage(role=MessageRole.CHATBOT, blocks=[ThinkingBlock(content="hmm"), TextBlock(text="a"), TextBlock(text="b")]),
        user("Thanks"),
    ]
    assert to_core_messages(messages) == [
        {"role": "system", "content": "Rule one.\n\nRule two."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "assistant", "content": "a\nb"},
        {"role": "user", "content": "Thanks"},
    ]


def test_function_results_are_refused_like_in_langchain():
    """One policy for both adapters: legacy function results are refused (tool results are taken)."""
    llm, members = fake_llm()
    with pytest.raises(InvalidConversationError, match="message 1 is a function message.*legacy function calling"):
        llm.chat([user("What is 6 * 7?"), ChatMessage(role=MessageRole.FUNCTION, content="42")])
    assert members[0].conversations == []


def test_chat_hands_the_core_role_content_messages():
    llm, members = fake_llm()
    response = llm.chat([system("Be kind."), user("Hi"), ChatMessage(role="assistant", content="Hello!"), user("Again")])
    assert members[0].conversations[-1] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Again"},
    ]
    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.content == SCRIPT


def test_system_prompt_field_is_prepended_once():
    llm, members = fake_llm(system_prompt="You are terse.")
    llm.chat([user("Hi")])
    assert members[0].conversations[-1] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]

    llm.chat([system("Context: sky is blue."), user("Hi")])
    assert members[0].conversations[-1][0] == {"role": "system", "content": "You are terse.\n\nContext: sky is blue."}

    # LLM.predict already adds the system prompt (LLM._extend_messages): it must not appear twice.
    llm.predict(PromptTemplate("Say {word}."), word="hi")
    assert members[0].conversations[-1] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}]


def test_complete_applies_completion_to_prompt_and_system_prompt():
    llm, members = fake_llm(system_prompt="Sys.", completion_to_prompt=lambda p: f"[INST] {p} [/INST]")
    response = llm.complete("Tell me")
    assert members[0].conversations[-1] == [{"role": "system", "content": "Sys."}, {"role": "user", "content": "[INST] Tell me [/INST]"}]
    assert response.text == SCRIPT

    llm.complete("Already formatted", formatted=True)
    assert members[0].conversations[-1] == [{"role": "user", "content": "Already formatted"}]


def test_complete_without_overrides_sends_the_prompt_as_a_user_turn():
    llm, members = fake_llm()
    llm.complete("Plain prompt")
    assert members[0].conversations[-1] == [{"role": "user", "content": "Plain prompt"}]


def test_custom_messages_to_prompt_renders_the_conversation():
    def render(messages):
        return " | ".join(f"{m.role.value}={m.content}" for m in messages)

    llm, members = fake_llm(messages_to_prompt=render, system_prompt="S")
    llm.chat([user("Hi")])
    assert members[0].conversations[-1] == [{"role": "user", "content": "system=S | user=Hi"}]


# ---------------------------------------------------------------------- responses
def test_chat_response_carries_usage_and_provenance():
    llm, _ = fake_llm(segment_tokens=10)
    response = llm.chat([user("Hi")])
    kwargs, raw = response.additional_kwargs, response.raw
    assert kwargs["finish_reason"] == raw["finish_reason"] == "stop"
    assert kwargs["rounds"] == len(raw["segments"]) == len(expected_segments(SCRIPT))
    assert kwargs["wins"] == {"alpha": len(raw["segments"])}
    assert raw["usage"]["completion_tokens"] == len(SCRIPT)
    assert raw["trace"]["rounds"] == kwargs["rounds"]
    assert [s["member"] for s in raw["segments"]] == ["alpha"] * kwargs["rounds"]
    # LlamaIndex's TokenCountingHandler reads the counts from raw["usage"]
    assert get_tokens_from_response(response) == (raw["usage"]["prompt_tokens"], len(SCRIPT))
    assert response.message.additional_kwargs == {}, "provenance must not leak into chat memory"


def test_stream_chat_yields_one_response_per_segment():
    llm, _ = fake_llm(segment_tokens=10)
    chunks = list(llm.stream_chat([user("Hi")]))
    assert [c.delta for c in chunks] == expected_segments(SCRIPT)
    text = ""
    for chunk in chunks:
        text += chunk.delta
        assert chunk.message.content == text and chunk.message.role == MessageRole.ASSISTANT
        assert chunk.additional_kwargs["member"] == "alpha"
        assert chunk.additional_kwargs["proposers"] == ["alpha", "beta"]
        assert chunk.additional_kwargs["scores"]["alpha"] == chunk.additional_kwargs["scores"]["beta"]
        assert chunk.raw["segment"]["round"] == chunk.additional_kwargs["round"]
    assert [c.additional_kwargs["round"] for c in chunks] == [1, 2, 3]
    first_scores = chunks[0].additional_kwargs["scores"]  # round 1: gamma proposed its own draft, and lost
    assert set(first_scores) == {"alpha", "beta", "gamma"} and first_scores["gamma"] < first_scores["alpha"]
    assert [c.additional_kwargs["finish_reason"] for c in chunks] == [None, None, "stop"]
    assert "usage" in chunks[-1].raw and "usage" not in chunks[0].raw
    assert get_tokens_from_response(chunks[-1])[1] == len(SCRIPT)


def test_stream_complete_yields_text_so_far_and_delta():
    llm, _ = fake_llm(segment_tokens=7)
    chunks = list(llm.stream_complete("Hi"))
    assert [c.delta for c in chunks] == expected_segments(SCRIPT, 7)
    assert [c.text for c in chunks] == [SCRIPT[: 7 * (i + 1)] for i in range(len(chunks))]


async def test_async_endpoints_match_sync():
    llm, _ = fake_llm(segment_tokens=10)
    assert (await llm.achat([user("Hi")])).message.content == SCRIPT
    assert (await llm.acomplete("Hi")).text == SCRIPT
    chat_chunks = [c async for c in await llm.astream_chat([user("Hi")])]
    completion_chunks = [c async for c in await llm.astream_complete("Hi")]
    assert [c.delta for c in chat_chunks] == [c.delta for c in completion_chunks] == expected_segments(SCRIPT)
    assert chat_chunks[-1].message.content == completion_chunks[-1].text == SCRIPT


def test_per_call_overrides_and_max_tokens_alias():
    llm, _ = fake_llm(segment_tokens=10)
    assert llm.complete("Hi", max_new_tokens=5).text == SCRIPT[:5]
    assert llm.complete("Hi", max_tokens=12).additional_kwargs["finish_reason"] == "length"
    assert llm.chat([user("Hi")], segment_tokens=4).additional_kwargs["rounds"] == len(expected_segments(SCRIPT, 4))
    with pytest.raises(ValueError, match="unsupported argument.*some_unknown_option"):  # refused, as in LangChain
        llm.complete("Hi", some_unknown_option=True)
    with pytest.raises(ValueError, match="functions.*legacy function calling"):
        llm.chat([user("Hi")], functions=[{"name": "f"}])
    assert llm.complete("Hi", max_tokens=None, seed=None, stop=None).text == SCRIPT  # None keeps the field


def test_field_changes_apply_to_the_next_call():
    llm, _ = fake_llm(segment_tokens=10)
    llm.chat([user("warm up")])
    llm.max_new_tokens = 8
    assert llm.complete("Hi").text == SCRIPT[:8]


def test_from_ensemble_starts_from_its_config():
    from llamaindex_fakes import scripted_ensemble

    ensemble = scripted_ensemble(SCRIPT)
    ensemble.config = EnsembleConfig(segment_tokens=4, max_new_tokens=9)
    llm = SpecFuseLLM.from_ensemble(ensemble)
    assert (llm.segment_tokens, llm.max_new_tokens, llm.preset) == (4, 9, None)
    assert llm.complete("Hi").text == SCRIPT[:9]
    assert llm.is_loaded and llm.model_name == "specfuse:alpha+beta+gamma"


# ---------------------------------------------------------------------- stop sequences
STOP_SCRIPT = "alpha beta STOP gamma delta"


@pytest.mark.parametrize("where", ["field", "call"])
def test_stop_sequences_cut_the_output_and_never_stream(where):
    field = {"stop": ["STOP"]} if where == "field" else {}
    call = {} if where == "field" else {"stop": ["STOP"]}
    llm, _ = fake_llm(STOP_SCRIPT, segment_tokens=4, **field)
    chunks = list(llm.stream_complete("Go", **call))
    streamed = "".join(c.delta for c in chunks)
    assert streamed == chunks[-1].text == "alpha beta "
    assert all("S" not in c.delta for c in chunks), "no part of the stop string is streamed"
    assert chunks[-1].additional_kwargs["finish_reason"] == "stop_sequence"
    assert llm.complete("Go", **call).text == "alpha beta "


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "messages",
    [
        [],
        [system("only a system message")],
        [ChatMessage(role=MessageRole.USER, blocks=[ImageBlock(url="http://example.invalid/cat.png")])],
        [ChatMessage(role="user", content=None)],  # issue 13: answered a greeting silently
        [system("Be brief."), ChatMessage(role="user", content="  \n")],
    ],
    ids=["empty", "system-only", "image", "content-none", "whitespace-question"],
)
@pytest.mark.parametrize("method", ["chat", "stream_chat"])
def test_bad_conversations_raise_value_errors_at_call_time(messages, method):
    llm, members = fake_llm()
    with pytest.raises(InvalidConversationError) as info:
        getattr(llm, method)(messages)  # streaming too: raised before the first item
    assert isinstance(info.value, ValueError)
    assert members[0].conversations == []


async def test_async_bad_conversation_raises_at_call_time():
    llm, _ = fake_llm()
    with pytest.raises(InvalidConversationError):
        await llm.astream_chat([])
    with pytest.raises(InvalidConversationError):
        await llm.achat([system("x")])


def test_prompt_too_long_for_a_member():
    llm, _ = fake_llm(member_window=200)
    with pytest.raises(ContextWindowExceededError) as info:
        llm.stream_complete("x" * 500)
    assert isinstance(info.value, ValueError)
    assert "context_overflow='skip_member'" in str(info.value)


def test_bad_per_call_override_raises():
    llm, _ = fake_llm()
    with pytest.raises(ValidationError):
        llm.complete("Hi", temperature=-1.0)


def test_leaving_a_stream_early_frees_the_request():
    llm, members = fake_llm(segment_tokens=4)
    stream = llm.stream_chat([user("Hi")])
    first = next(stream)
    assert first.delta == SCRIPT[:4]
    assert members[0].closed == 0
    stream.close()
    assert all(m.closed >= 1 for m in members)


async def test_leaving_an_async_stream_early_frees_the_request():
    llm, members = fake_llm(segment_tokens=4)
    stream = await llm.astream_complete("Hi")
    first = await stream.__anext__()
    assert first.delta == SCRIPT[:4]
    await stream.aclose()
    # LlamaIndex's callback wrapper does not close the generator it wraps; the event loop's
    # async-generator finalizer does, a moment later.
    for _ in range(100):
        if all(m.closed for m in members):
            break
        await asyncio.sleep(0.01)
    assert all(m.closed >= 1 for m in members)


@pytest.mark.parametrize("content, message", [(None, "message 1 has no content"), ("", "message 1 .*empty or only whitespace")])
def test_none_or_empty_content_is_named(content, message):
    llm, _ = fake_llm()
    with pytest.raises(InvalidConversationError, match=message):
        llm.chat([system("Be brief."), ChatMessage(role="user", content=content)])
    with pytest.raises(InvalidConversationError, match="empty or only whitespace"):
        llm.complete("   ")


async def test_structured_prediction_constrains_every_member_and_parses():
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str
        score: int

    llm, members = fake_llm('{"text": "yes", "score": 3}')
    prompt = PromptTemplate("Answer {question}")
    expected = Answer(text="yes", score=3)
    assert llm.structured_predict(Answer, prompt, question="what?") == expected
    assert await llm.astructured_predict(Answer, prompt, question="what?") == expected
    streamed = list(llm.stream_structured_predict(Answer, prompt, question="what?"))
    assert streamed[-1] == expected
    assert [p async for p in await llm.astream_structured_predict(Answer, prompt, question="what?")][-1] == expected
    assert llm.as_structured_llm(Answer).complete("what?").raw == expected
    assert all(f.kind == "json_schema" for f in members[0].formats) and len(members[0].formats) == 5
