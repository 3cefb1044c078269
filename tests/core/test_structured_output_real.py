"""Structured output and tool calling on the real tiny preset: every member drafts under its own
grammar, the result parses and validates, provenance per segment still holds, a member's grammar
failure is its fault only, and hostile formats fail before any model work."""

from __future__ import annotations

import enum
import time
from typing import Optional

import pytest
from pydantic import BaseModel

from specfuse_core.errors import GrammarEngineError, UnsupportedSchemaError
from specfuse_core.local.session import LocalSession

pytestmark = pytest.mark.integration

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


class Size(str, enum.Enum):
    small = "small"
    large = "large"


class Item(BaseModel):
    name: str
    quantity: int


class Order(BaseModel):
    customer: str
    size: Size
    items: list[Item]
    total: float
    note: Optional[str] = None


PROMPTS = [
    f"{who} ordered {a} {x} and {b} {y} in a {size} box, {total} dollars in total. Write the order as JSON."
    for who, a, x, b, y, size, total in [
        ("Alice", 2, "apples", 3, "pears", "small", 4.5), ("Bob", 1, "lamp", 2, "bulbs", "large", 30),
        ("Chen", 5, "pens", 1, "notebook", "small", 7.25), ("Dana", 4, "eggs", 2, "milks", "large", 9),
        ("Eve", 3, "books", 1, "bag", "large", 55.5), ("Farid", 6, "cups", 6, "plates", "large", 42),
        ("Gina", 1, "phone", 1, "case", "small", 410), ("Hiro", 2, "shirts", 1, "tie", "small", 61.2),
        ("Ines", 10, "nails", 1, "hammer", "small", 12), ("Jon", 2, "tires", 4, "bolts", "large", 220),
        ("Kim", 1, "cake", 12, "candles", "large", 25), ("Leo", 3, "melons", 2, "limes", "small", 8.8),
        ("Mia", 2, "chairs", 1, "table", "large", 300), ("Noor", 7, "stamps", 2, "envelopes", "small", 5.6),
        ("Omar", 1, "guitar", 6, "strings", "large", 180), ("Pia", 4, "socks", 2, "hats", "small", 19.9),
        ("Quin", 2, "maps", 1, "compass", "small", 33), ("Rosa", 8, "roses", 1, "vase", "large", 47.5),
        ("Sam", 1, "drill", 20, "screws", "large", 89), ("Tara", 3, "candles", 3, "holders", "small", 14),
    ]
]


def _check_provenance(result, ensemble):
    segments = [r.candidates[r.winner].text for r in result.trace.rounds]
    assert "".join(segments) == result.text
    assert set(result.trace.wins) <= set(ensemble.member_names)


def test_nested_model_parses_and_validates_with_provenance(tiny_ensemble):
    result = tiny_ensemble.generate(PROMPTS[0], response_format=Order, max_new_tokens=120)
    assert isinstance(result.parsed, Order) and result.finish_reason == "stop"
    assert Order.model_validate_json(result.text) == result.parsed
    _check_provenance(result, tiny_ensemble)


@pytest.mark.slow
@pytest.mark.parametrize("prompt", PROMPTS)
def test_nested_model_every_time(tiny_ensemble, prompt):
    result = tiny_ensemble.generate(prompt, response_format=Order, max_new_tokens=160)
    assert isinstance(result.parsed, Order), result.text


def test_required_tool_call_has_the_right_arguments(tiny_ensemble):
    result = tiny_ensemble.generate("What is the weather in Paris right now?", tools=[WEATHER], tool_choice="required", max_new_tokens=60)
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert result.tool_calls[0].id and result.content == ""
    _check_provenance(result, tiny_ensemble)


def test_tool_result_in_history_leads_to_a_text_answer(tiny_ensemble):
    history = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18 C and sunny"},
    ]
    result = tiny_ensemble.generate(history, tools=[WEATHER], tool_choice="none", max_new_tokens=24)
    assert result.tool_calls == [] and result.content.strip()


@pytest.mark.parametrize("schema, match", [
    ({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"}, "recursive|cycle"),
    ({"type": "string", "enum": [f"v{i}" for i in range(5000)]}, "enum"),
    ({"type": "integer", "minimum": 5, "maximum": 1}, ""),
])
def test_hostile_schemas_fail_fast_with_a_named_error(tiny_ensemble, schema, match):
    started = time.perf_counter()
    with pytest.raises(UnsupportedSchemaError, match=match):
        tiny_ensemble.generate("hi", response_format=schema, max_new_tokens=8)
    assert time.perf_counter() - started < 10


def test_a_grammar_failure_in_one_member_is_its_fault(tiny_ensemble, monkeypatch):
    victim = tiny_ensemble.member_names[-1]
    constrain = LocalSession.constrain

    def broken(self, fmt):
        done = constrain(self, fmt)
        if self.name == victim:
            def fail(token_id: int) -> None:
                raise GrammarEngineError("engine failed (injected)")
            self.constraint.accept_token = fail  # type: ignore[method-assign]
        return done

    monkeypatch.setattr(LocalSession, "constrain", broken)

    class Point(BaseModel):
        x: int
        y: int

    result = tiny_ensemble.generate("Give the point x=3, y=4 as JSON.", response_format=Point, max_new_tokens=30)
    assert isinstance(result.parsed, Point)
    assert [(f.member, f.phase) for f in result.trace.faults] == [(victim, "draft")]
    assert "GrammarEngineError" in result.trace.faults[0].error
