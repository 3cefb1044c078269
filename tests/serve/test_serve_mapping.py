"""OpenAI request fields -> conversation and EnsembleConfig overrides, and the 400s for what the
ensemble cannot honour (no models needed)."""

from __future__ import annotations

import pytest

from specfuse_core import EnsembleConfig
from specfuse_core.serve.errors import APIError
from specfuse_core.serve.limits import ServeLimits
from specfuse_core.serve.mapping import plan_request
from specfuse_core.serve.schemas import parse_request

LIMITS = ServeLimits(max_messages=4, max_prompt_chars=100, max_tokens_cap=64, default_max_tokens=16)
USER = [{"role": "user", "content": "hi"}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def plan(config: EnsembleConfig | None = None, **fields):
    return plan_request(parse_request({"model": "m", "messages": USER, **fields}), "m", LIMITS, config or EnsembleConfig())


def refused(status: int = 400, **fields) -> APIError:
    with pytest.raises(APIError) as caught:
        plan(**fields)
    assert caught.value.status == status
    return caught.value


def test_sampling_fields_map_to_config_overrides():
    result = plan(max_tokens=20, temperature=0.7, top_p=0.9, seed=7, stop="END", n=1, stream=True, stream_options={"include_usage": True})
    assert result.overrides == {"max_new_tokens": 20, "temperature": 0.7, "top_p": 0.9, "seed": 7, "stop": ["END"]}
    assert result.stream and result.include_usage
    assert plan(max_completion_tokens=5, stop=["a", "b"]).overrides == {"max_new_tokens": 5, "stop": ["a", "b"]}
    assert plan().overrides == {"max_new_tokens": LIMITS.default_max_tokens}
    assert not plan().stream and not plan(stream=True).include_usage


def test_messages_roles_and_text_parts():
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "line one"}, {"type": "text", "text": "line two"}], "name": "ann"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and?"},
    ]
    result = plan_request(parse_request({"model": "m", "messages": messages}), "m", LIMITS, EnsembleConfig())
    assert result.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "line one\nline two"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and?"},
    ]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}, "tools[0].function.parameters"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tool_choice": "sometimes", "tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "g"}}, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}}, "response_format.json_schema.name"),
        ({"response_format": {"type": "json_object"}, "tools": [{"type": "function", "function": {"name": "f"}}]}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": -1.0}, "presence_penalty"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"store": True}, "store"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"max_tokens": 65}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"max_tokens": 5, "max_completion_tokens": 6}, "max_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"seed": 2**63}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": ["ok", ""]}, "stop[1]"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"temperature": "0.5"}, "temperature"),
        ({"stream": "yes"}, "stream"),
        ({"best_of": 2}, "best_of"),
        ({"specfuse": {"segment_tokens": 0}}, "specfuse.segment_tokens"),
        ({"specfuse": {"temperature": 1.0}}, "specfuse.temperature"),
        ({"specfuse": {"persist_weights": True}}, "specfuse.persist_weights"),
        ({"specfuse": {"segmnt_tokens": 4}}, "specfuse.segmnt_tokens"),
        ({"specfuse": {"gate_threshold": None}}, "specfuse.gate_threshold"),
    ],
)
def test_unsupported_or_invalid_fields_are_400_naming_the_field(fields, param):
    error = refused(**fields)
    assert error.param == param
    assert error.body()["error"]["type"] == "invalid_request_error"
    assert param.split("[")[0].split(".")[-1] in error.message


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        ([{"role": "user", "content": "x"}] * 5, "messages"),
        ([{"role": "user", "content": "x" * 101}], "messages"),
        ([{"role": "tool", "content": "42", "tool_call_id": "c1"}, {"role": "user", "content": "y"}], "messages[0].tool_call_id"),
        ([{"role": "tool", "content": "42"}, {"role": "user", "content": "y"}], "messages[0].tool_call_id"),
        ([{"role": "function", "content": "42", "name": "f"}], "messages[0].role"),
        ([{"role": "user", "content": "x", "tool_call_id": "c1"}], "messages[0].tool_call_id"),
        ([{"role": "user", "content": "x", "tool_calls": [CALL]}], "messages[0].tool_calls"),
        ([{"role": "critic", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}], "messages[0].content[0].type"),
        ([{"role": "user"}], "messages[0].content"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        ([{"role": "user", "content": "x", "colour": "red"}], "messages[0].colour"),
        ([{"role": "assistant", "content": "x", "tool_calls": [{"id": "c"}]}, {"role": "user", "content": "y"}], "messages[0].tool_calls[0]"),
        ([{"role": "assistant", "content": None, "tool_calls": [{**CALL, "id": ""}]}, {"role": "user", "content": "y"}], "messages[0].tool_calls[0].id"),
        ([{"role": "assistant", "content": None, "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{oops"}}]}, {"role": "user", "content": "y"}],
         "messages[0].tool_calls[0].function.arguments"),
        ([{"role": "assistant", "content": None, "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1]"}}]}, {"role": "user", "content": "y"}],
         "messages[0].tool_calls[0].function.arguments"),
        ([{"role": "assistant", "content": None}, {"role": "user", "content": "y"}], "messages[0].content"),
        ([{"content": "x"}], "messages[0].role"),
    ],
)
def test_bad_messages_are_400_naming_the_message(messages, param):
    with pytest.raises(APIError) as caught:
        plan_request(parse_request({"model": "m", "messages": messages}), "m", LIMITS, EnsembleConfig())
    assert (caught.value.status, caught.value.param) == (400, param)


def test_off_values_of_unsupported_fields_and_bookkeeping_fields_are_accepted():
    result = plan(
        n=1, tools=[], tool_choice="none", functions=[], function_call="none", logprobs=False, top_logprobs=0, logit_bias={}, frequency_penalty=0, presence_penalty=0.0,
        response_format={"type": "text"}, modalities=["text"], store=False, parallel_tool_calls=True, user="u1",
        metadata={"k": "v"}, service_tier="auto", prompt_cache_key="p", safety_identifier="s",
    )
    assert result.overrides == {"max_new_tokens": LIMITS.default_max_tokens}
    assert result.output == {}


def test_tools_and_tool_choice_become_output_arguments():
    choice = {"type": "function", "function": {"name": "get_weather"}}
    result = plan(tools=[WEATHER], tool_choice=choice, parallel_tool_calls=False)
    assert result.output == {"tools": [WEATHER], "tool_choice": choice, "parallel_tool_calls": False}
    assert plan(tools=[WEATHER]).output == {"tools": [WEATHER]}  # "auto" is the core's default too
    assert plan(tools=[WEATHER], tool_choice="required").output["tool_choice"] == "required"


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": {
            "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": False}}},
    ],
)
def test_json_response_formats_pass_to_the_core(response_format):
    assert plan(response_format=response_format).output == {"response_format": response_format}


def test_a_tool_conversation_maps_calls_and_results_by_id():
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "18 C"}]},
    ]
    result = plan_request(parse_request({"model": "m", "messages": messages, "tools": [WEATHER]}), "m", LIMITS, EnsembleConfig())
    assert result.messages[1:] == [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"role": "tool", "content": "18 C", "tool_call_id": "call_1", "name": "get_weather"},  # the name comes from the call
    ]


def test_specfuse_extension_sets_ensemble_fields():
    result = plan(specfuse={"segment_tokens": 6, "weighting": "hedge", "model_exit": True})
    assert result.overrides == {"max_new_tokens": 16, "segment_tokens": 6, "weighting": "hedge", "model_exit": True}


def test_extension_may_lower_but_not_raise_the_server_timeout():
    server = EnsembleConfig(timeout_s=30)
    assert plan(server, specfuse={"timeout_s": 5}).overrides["timeout_s"] == 5
    with pytest.raises(APIError) as caught:
        plan(server, specfuse={"timeout_s": 60})
    assert caught.value.param == "specfuse.timeout_s"


def test_unknown_model_is_404_and_missing_fields_are_named():
    error = refused(404, model="gpt-4o")
    assert (error.param, error.code) == ("model", "model_not_found")
    with pytest.raises(APIError) as caught:
        parse_request({"messages": USER})
    assert (caught.value.param, caught.value.code) == ("model", "missing_required_parameter")
    with pytest.raises(APIError):
        parse_request(["not", "an", "object"])


def test_limits_must_be_consistent():
    with pytest.raises(ValueError, match="default_max_tokens"):
        ServeLimits(max_tokens_cap=8, default_max_tokens=16)
    with pytest.raises(ValueError, match="max_messages"):
        ServeLimits(max_messages=0)
