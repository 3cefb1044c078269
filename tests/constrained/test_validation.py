"""Final-text validation is independent of the engine and fails with StructuredOutputError."""

from __future__ import annotations

import json
from enum import Enum
from typing import Optional

import pytest
from pydantic import BaseModel, Field

from specfuse_core.constrained import response_format_from, validate_output
from specfuse_core.errors import SpecFuseError, StructuredOutputError


class Unit(str, Enum):
    kg = "kg"
    lb = "lb"


class Line(BaseModel):
    sku: str
    quantity: int = Field(ge=1)
    weight: float
    unit: Unit


class Order(BaseModel):
    customer: str
    lines: list[Line]
    note: Optional[str] = None


GOOD = {"customer": "Ada", "lines": [{"sku": "x1", "quantity": 2, "weight": 1.5, "unit": "kg"}], "note": None}


def test_pydantic_model_parses_into_an_instance():
    order = validate_output(json.dumps(GOOD), response_format_from(Order))
    assert isinstance(order, Order) and order.lines[0].unit is Unit.kg


@pytest.mark.parametrize("text,problem", [
    ('{"customer": "Ada", "lines": [', "not JSON"),
    (json.dumps({**GOOD, "lines": [{**GOOD["lines"][0], "quantity": 0}]}), "does not validate as Order"),
    (json.dumps({**GOOD, "lines": [{**GOOD["lines"][0], "unit": "stone"}]}), "does not validate as Order"),
])
def test_pydantic_failures_are_named(text, problem):
    with pytest.raises(StructuredOutputError, match=problem) as info:
        validate_output(text, response_format_from(Order))
    assert info.value.text == text and isinstance(info.value, SpecFuseError)


def test_json_schema_dict_validates_with_jsonschema_and_says_where():
    fmt = response_format_from({"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]})
    assert validate_output('{"n": 2}', fmt) == {"n": 2}
    with pytest.raises(StructuredOutputError, match="at n"):
        validate_output('{"n": 7}', fmt)
    with pytest.raises(StructuredOutputError, match="at the top level"):
        validate_output("{}", fmt)


def test_json_mode_needs_an_object_and_regex_a_full_match():
    mode = response_format_from({"type": "json_object"})
    assert validate_output('{"a": [1]}', mode) == {"a": [1]}
    with pytest.raises(StructuredOutputError):
        validate_output("[1, 2]", mode)
    regex = response_format_from({"type": "regex", "pattern": r"\d{3}-[a-z]+"})
    assert validate_output("123-abc", regex) == "123-abc"
    with pytest.raises(StructuredOutputError, match="pattern"):
        validate_output("123-abc!", regex)
