"""The server over loopback, driven by the official ``openai`` client (and raw httpx where a client
would not send such a request), on a small real ensemble: responses equal what the engine gives the
same request alone, chunks carry provenance, and mistakes get OpenAI-shaped errors."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai import OpenAI

from specfuse_core import Member, SpecFuse
from specfuse_core.serve import ServerThread, ServeSettings, create_app

from .conftest import KEY, LIMITS, MODEL

HELLO = [{"role": "user", "content": "Tell me about rivers."}]


def test_models_endpoint_lists_the_served_model(client, small_ensemble):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    assert [m["name"] for m in models[0].specfuse["members"]] == small_ensemble.member_names
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_completion_equals_the_engine_alone_with_usage_and_provenance(client, small_ensemble):
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12)
    alone = small_ensemble.generate(HELLO, max_new_tokens=12)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == alone.text
    assert choice.finish_reason == alone.finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (
        alone.usage.prompt_tokens, alone.usage.completion_tokens, alone.usage.total_tokens,
    )
    assert reply.model == MODEL and reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    segments = reply.specfuse["segments"]
    assert [(s["member"], s["round"]) for s in segments] == [(r.winner_member, r.round) for r in alone.trace.rounds]
    assert "".join(s["text"] for s in segments) == alone.text
    assert reply.specfuse["wins"] == alone.trace.wins and reply.specfuse["finish_reason"] == "length"


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_has_one_chunk_per_segment_then_finish_and_usage(client, small_ensemble, include_usage):
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, stream=True, **options))
    alone_stream = small_ensemble.stream(HELLO, max_new_tokens=12)
    events = list(alone_stream)
    alone = alone_stream.result()

    assert len({c.id for c in chunks}) == 1
    first, segments, finish = chunks[0], chunks[1 : 1 + len(events)], chunks[1 + len(events)]
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in segments] == [e.text for e in events]
    assert [(c.specfuse["member"], c.specfuse["round"], c.specfuse["proposers"]) for c in segments] == [(e.member, e.round, e.proposers) for e in events]
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    assert finish.choices[0].finish_reason == "length" and finish.choices[0].delta.content is None
    if include_usage:
        assert len(chunks) == len(events) + 3
        usage = chunks[-1]
        assert usage.choices == [] and usage.usage.completion_tokens == alone.usage.completion_tokens
        assert usage.usage.prompt_tokens == alone.usage.prompt_tokens == small_ensemble.count_prompt_tokens(HELLO)
        assert all(c.usage is None for c in chunks[:-1])
    else:
        assert len(chunks) == len(events) + 2 and all(c.usage is None for c in chunks)


def test_sampling_fields_reach_the_engine(client, small_ensemble):
    sampled = dict(temperature=0.9, top_p=0.95, seed=11)
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=16, **sampled)
    alone = small_ensemble.generate(HELLO, max_new_tokens=16, **sampled)
    assert reply.choices[0].message.content == alone.text
    assert alone.text != small_ensemble.generate(HELLO, max_new_tokens=16).text  # not greedy by accident


def test_stop_string_cuts_the_answer_and_finishes_with_stop(client, small_ensemble):
    full = small_ensemble.generate(HELLO, max_new_tokens=16).text
    stop = full[len(full) // 2 :][:2]
    assert stop.strip(), full
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=16, stop=[stop])
    assert reply.choices[0].message.content == full[: full.index(stop)]
    assert reply.choices[0].finish_reason == "stop" and reply.specfuse["finish_reason"] == "stop_sequence"


def test_extension_settings_and_timeout_reason(client, small_ensemble):
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, extra_body={"specfuse": {"segment_tokens": 2}})
    alone = small_ensemble.generate(HELLO, max_new_tokens=12, segment_tokens=2)
    assert reply.choices[0].message.content == alone.text and reply.specfuse["rounds"] == len(alone.trace.rounds) > 2
    # a timeout that has passed by the first round: the answer ends at once, as "length" for OpenAI clients
    timed_out = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=12, extra_body={"specfuse": {"timeout_s": 1e-9}})
    assert timed_out.choices[0].finish_reason == "length" and timed_out.specfuse["finish_reason"] == "timeout"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object", "$ref": "#/nope"}}}}, "response_format"),
        ({"max_tokens": LIMITS.max_tokens_cap + 1}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}] * (LIMITS.max_messages + 1)}, "messages"),
        ({"messages": [{"role": "system", "content": "only a system message"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "   "}]}, "messages"),
        ({"extra_body": {"best_of": 3}}, "best_of"),
    ],
)
def test_client_mistakes_are_400_with_the_field(client, fields, param):
    request = {"model": MODEL, "messages": HELLO, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**request)
    assert caught.value.status_code == 400 and caught.value.param == param
    assert caught.value.body["type"] == "invalid_request_error" and caught.value.body["message"]


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.code == "model_not_found"


def test_body_limit_json_errors_and_unknown_paths(small_server):
    url = small_server.base_url
    with httpx.Client(timeout=30) as http:
        big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (LIMITS.max_body_bytes + 1)}]}
        response = http.post(f"{url}/chat/completions", json=big)
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"

        def chunked():  # no Content-Length: counted as it arrives
            for _ in range(LIMITS.max_body_bytes // 1024 + 2):
                yield b" " * 1024

        response = http.post(f"{url}/chat/completions", content=chunked(), headers={"content-type": "application/json"})
        assert response.status_code == 413

        response = http.post(f"{url}/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"})
        assert response.status_code == 400 and "parse the JSON" in response.json()["error"]["message"]

        nested = b"[" * 30_000 + b"]" * 30_000  # under the size limit, beyond the parser's depth
        response = http.post(f"{url}/chat/completions", content=nested, headers={"content-type": "application/json"})
        assert response.status_code == 400 and "parse the JSON" in response.json()["error"]["message"]

        response = http.post(f"{url}/completions", json={"model": MODEL, "prompt": "hi"})
        assert response.status_code == 404 and response.json()["error"]["message"]
        assert http.get(f"{url}/chat/completions").status_code == 405


def test_prompt_over_a_members_context_window_is_400_context_length(small_members):
    short = [Member(m.model, m.tokenizer, name=m.name, context_window=96) for m in small_members]
    app = create_app(SpecFuse(short), ServeSettings(model_name=MODEL, limits=LIMITS))
    with ServerThread(app) as server, OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 200}], max_tokens=4)
        assert caught.value.code == "context_length_exceeded" and "context window" in caught.value.message
        assert client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4).choices[0].message.content


def test_api_key_is_required_when_configured(small_ensemble):
    app = create_app(small_ensemble, ServeSettings(model_name=MODEL, limits=LIMITS, api_key=KEY))
    with ServerThread(app) as server:
        for key in ("wrong", KEY[:-1], KEY + "x"):
            with OpenAI(base_url=server.base_url, api_key=key, max_retries=0) as client:
                with pytest.raises(openai.AuthenticationError) as caught:
                    client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4)
                assert caught.value.code == "invalid_api_key"
                with pytest.raises(openai.AuthenticationError):
                    client.models.list()
        response = httpx.post(f"{server.base_url}/chat/completions", json={"model": MODEL, "messages": HELLO})
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "missing_api_key"
        assert httpx.get(server.base_url.removesuffix("/v1") + "/health").json()["status"] == "ok"  # probes need no key
        with OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as client:
            assert client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4).choices[0].message.content
            assert [m.id for m in client.models.list().data] == [MODEL]


def test_sse_frames_are_plain_data_lines_ending_with_done(small_server):
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 8, "stream": True}
    with httpx.stream("POST", f"{small_server.base_url}/chat/completions", json=body, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    frames = raw.split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    for frame in frames[:-2]:
        assert frame.startswith("data: ") and "\n" not in frame
        assert json.loads(frame.removeprefix("data: "))["object"] == "chat.completion.chunk"


def test_extension_naming_an_unknown_member_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4, extra_body={"specfuse": {"roles": {"gpt": "draft"}}})
    assert caught.value.param == "specfuse" and "'gpt'" in caught.value.message


def test_member_faults_show_in_chunks_and_a_failed_ensemble_is_an_error(small_members):
    from core.reliability_fakes import WrappedMember  # fault injection around the real members

    one_fails = [WrappedMember(small_members[0], fail_at=2, phases=("draft",)), small_members[1]]
    all_fail = [WrappedMember(m, fail_at=2, phases=("draft",)) for m in small_members]
    for members, broken in ((one_fails, False), (all_fail, True)):
        app = create_app(SpecFuse(members), ServeSettings(model_name=MODEL, limits=LIMITS))
        with ServerThread(app) as server, OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            request = dict(model=MODEL, messages=HELLO, max_tokens=24, extra_body={"specfuse": {"segment_tokens": 2}})
            if not broken:
                chunks = list(client.chat.completions.create(stream=True, **request))
                segments = [c for c in chunks if "member" in (getattr(c, "specfuse", None) or {})]
                faults = [(c.specfuse["round"], f["member"], f["phase"], f["round"]) for c in segments for f in c.specfuse.get("faults", [])]
                assert faults == [(2, "llama", "draft", 2)]  # on the chunk of the round it failed in
                assert chunks[-1].specfuse["faults"][0]["member"] == "llama"  # and in the summary
                assert chunks[-1].choices[0].finish_reason == "length"
                continue
            with pytest.raises(openai.APIError) as caught:  # the error event after the first segment
                list(client.chat.completions.create(stream=True, **request))
            assert "every member of the request failed" in caught.value.message
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(**request)
            assert caught.value.code == "ensemble_failed"
            assert client.models.list().data  # the server is fine afterwards
