"""Response formats normalise to one canonical form; hostile schemas fail fast with a named error."""

from __future__ import annotations

import time
from enum import Enum

import pytest
from pydantic import BaseModel

from specfuse_core.constrained import SchemaLimits, response_format_from
from specfuse_core.errors import SpecFuseError, UnsupportedSchemaError

from .conftest import QWEN, SMOL


class Color(str, Enum):
    red = "red"
    blue = "blue"


class Item(BaseModel):
    name: str
    color: Color


class Order(BaseModel):
    items: list[Item]
    note: str | None = None


def test_spellings_of_the_same_schema_share_one_key_and_property_order_counts():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}
    openai = {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}
    assert response_format_from(schema).key == response_format_from(openai).key
    assert response_format_from(openai).name == "thing"
    # the engine writes properties in schema order, so another order is another format
    swapped = {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}}
    assert response_format_from(swapped).key != response_format_from(schema).key


def test_pydantic_model_class_keeps_the_model_for_validation():
    fmt = response_format_from(Order)
    assert fmt.kind == "json_schema" and fmt.model is Order and fmt.name == "Order"
    assert "$defs" in fmt.schema  # nested model and enum come as local definitions


def test_json_mode_regex_and_lark():
    assert response_format_from({"type": "json_object"}).schema == {"type": "object"}
    regex = response_format_from({"type": "regex", "pattern": r"\d+"})
    assert (regex.kind, regex.source) == ("regex", r"\d+")
    assert response_format_from({"type": "lark", "grammar": 'start: "yes" | "no"'}).kind == "lark"


@pytest.mark.parametrize("bad", [None, "a string", 3, {"type": "regex"}, {"type": "regex", "pattern": ""}, {"type": "lark", "grammar": 1}])
def test_malformed_formats_are_named_errors(bad):
    with pytest.raises(UnsupportedSchemaError):
        response_format_from(bad)


def test_unsupported_schema_error_is_a_specfuse_value_error():
    assert issubclass(UnsupportedSchemaError, SpecFuseError) and issubclass(UnsupportedSchemaError, ValueError)


# ---------------------------------------------------------------------- hostile schemas
RECURSIVE = {"$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}, "required": ["child"]}},
             "$ref": "#/$defs/node"}


class Tree(BaseModel):
    label: str
    children: list["Tree"] = []


def test_recursive_schemas_are_refused_unless_allowed():
    for schema in (RECURSIVE, Tree, {"type": "object", "properties": {"me": {"$ref": "#"}}}):
        with pytest.raises(UnsupportedSchemaError, match="recursive"):
            response_format_from(schema)
    assert response_format_from(Tree, SchemaLimits(allow_recursive=True)).model is Tree


def test_huge_enum_fails_before_the_engine_sees_it():
    schema = {"enum": [f"value-{i}" for i in range(100_000)]}
    start = time.perf_counter()
    with pytest.raises(UnsupportedSchemaError, match="enumerates 100,000 values"):
        response_format_from(schema)
    assert time.perf_counter() - start < 0.5


def test_deep_nesting_external_refs_dangling_refs_and_size():
    deep: dict = {"type": "string"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}
    with pytest.raises(UnsupportedSchemaError, match="deeper"):
        response_format_from(deep)
    with pytest.raises(UnsupportedSchemaError, match="only local"):
        response_format_from({"$ref": "https://example.com/schema.json"})
    with pytest.raises(UnsupportedSchemaError, match="points to nothing"):
        response_format_from({"$ref": "#/$defs/missing"})
    with pytest.raises(UnsupportedSchemaError, match="max_source_chars"):
        response_format_from({"type": "regex", "pattern": "|".join(f"word{i}" for i in range(30_000))})


def test_unsatisfiable_and_invalid_schemas_fail_at_compile(make_constraint):
    make_constraint(SMOL, {"type": "object"})  # the tokenizer's engine vocabulary is built once, not timed
    for schema, why in [
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "Unsatisfiable"),
        ({"type": "string", "minLength": 5, "maxLength": 2}, "Unsatisfiable"),
        ({"type": "strong"}, "Invalid type"),
        ({"type": "regex", "pattern": "(abc"}, "regex"),
        ({"type": "lark", "grammar": "start: undefined_rule"}, "rejects the lark"),
    ]:
        start = time.perf_counter()
        with pytest.raises(UnsupportedSchemaError, match=why):
            make_constraint(SMOL, schema)
        assert time.perf_counter() - start < 1.0, schema


def test_a_grammar_over_the_engine_fuel_fails_with_a_named_error(make_constraint):
    """With the Python size limits raised, the engine's own fuel limit still stops a huge grammar."""
    limits = SchemaLimits(max_enum_values=10**6, max_source_chars=10**7)
    schema = {"enum": [f"value-{i:06d}" for i in range(100_000)]}
    with pytest.raises(UnsupportedSchemaError, match="too big"):
        make_constraint(QWEN, response_format_from(schema, limits), limits=limits)


def test_compile_time_limit(make_constraint):
    limits = SchemaLimits(max_compile_seconds=0.0)
    with pytest.raises(UnsupportedSchemaError, match="max_compile_seconds"):
        make_constraint(SMOL, {"type": "object", "properties": {"compile_limit_probe": {"type": "integer"}}}, limits=limits)
