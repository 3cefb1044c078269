"""What a request asks its output to be: one normalised :class:`ResponseFormat` from the many ways
callers spell it (a JSON Schema dict, a pydantic model class, OpenAI's ``response_format`` dicts,
a regex, a Lark grammar). The format is tokenizer-free; backends compile it per tokenizer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from ..errors import UnsupportedSchemaError
from .limits import SchemaLimits, check_schema, check_source_size

FormatKind = Literal["json_schema", "json_object", "regex", "lark", "tools"]

# One JSON layout for every member: compact separators, no free whitespace. Free whitespace lets a
# small model loop on newlines, and a fixed layout makes the members' candidates comparable.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True)
class ResponseFormat:
    """A normalised output constraint. ``source`` is the grammar's text (compact JSON for schemas:
    keys keep their order, since the engine writes properties in schema order), so equal formats
    share compiled grammars; ``model`` is the pydantic class to validate into."""

    kind: FormatKind
    source: str
    name: str | None = None
    model: type[BaseModel] | None = field(default=None, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.source)

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON Schema of a JSON format (``{"type": "object"}`` for JSON mode)."""
        return json.loads(self.source) if self.kind in ("json_schema", "json_object") else None


def response_format_from(spec: Any, limits: SchemaLimits | None = None) -> ResponseFormat:
    """Normalise and check a ``response_format``. Accepted: a :class:`ResponseFormat`; a pydantic
    model class; ``{"type": "json_object"}``; ``{"type": "json_schema", "json_schema": {"name",
    "schema"}}`` (OpenAI); ``{"type": "regex", "pattern": ...}``; ``{"type": "lark", "grammar": ...}``;
    any other dict is taken as a JSON Schema. Raises :class:`UnsupportedSchemaError`."""
    limits = limits or SchemaLimits()
    if isinstance(spec, ResponseFormat):
        return spec
    if isinstance(spec, type) and issubclass(spec, BaseModel):
        return _json_schema(spec.model_json_schema(), limits, name=spec.__name__, model=spec)
    if not isinstance(spec, dict):
        raise UnsupportedSchemaError(
            f"response_format must be a JSON Schema dict, a pydantic model class or a format dict, not {type(spec).__name__}"
        )
    kind = spec.get("type")
    if kind == "json_object":
        return ResponseFormat("json_object", _canonical({"type": "object"}))
    if kind == "json_schema" and isinstance(spec.get("json_schema"), dict):
        inner = spec["json_schema"]
        return _json_schema(inner.get("schema", {}), limits, name=inner.get("name"))
    if kind == "regex":
        return ResponseFormat("regex", _text(spec, "pattern", limits))
    if kind in ("lark", "grammar"):
        return ResponseFormat("lark", _text(spec, "grammar", limits))
    return _json_schema(spec, limits)


def _json_schema(schema: Any, limits: SchemaLimits, name: str | None = None, model: type[BaseModel] | None = None) -> ResponseFormat:
    check_schema(schema, limits)
    source = _canonical(schema)
    check_source_size(source, limits, "the schema")
    return ResponseFormat("json_schema", source, name=name, model=model)


def _text(spec: dict, field_name: str, limits: SchemaLimits) -> str:
    value = spec.get(field_name)
    if not isinstance(value, str) or not value:
        raise UnsupportedSchemaError(f"a {spec['type']!r} response_format needs a non-empty string {field_name!r}")
    check_source_size(value, limits, f"the {field_name}")
    return value


def _canonical(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise UnsupportedSchemaError(f"schema is not JSON-serialisable: {error}") from None
