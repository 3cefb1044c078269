"""The last check of a constrained request: the final text parses and validates, or the request
fails with :class:`~specfuse_core.errors.StructuredOutputError`. Validation is independent of the
grammar engine (jsonschema, pydantic, Python's re), so an engine bug cannot pass bad output on."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import StructuredOutputError
from .formats import ResponseFormat


def validate_output(text: str, fmt: ResponseFormat) -> Any:
    """The parsed value: a pydantic instance (model formats), the JSON value (schemas, JSON mode) or
    the text (regex). Lark grammars have no independent validator; the caller checks that the
    member's matcher accepts the text (``MemberConstraint.sync_to`` + ``end_allowed``)."""
    if fmt.kind == "regex":
        if re.fullmatch(fmt.source, text) is None:
            raise StructuredOutputError("the text does not match the pattern", text)
        return text
    if fmt.kind not in ("json_schema", "json_object"):
        raise ValueError(f"validate_output does not check {fmt.kind!r} formats")
    value = _parse_json(text)
    if fmt.model is not None:
        try:
            return fmt.model.model_validate(value)
        except Exception as error:  # pydantic.ValidationError, or a model validator's own error
            raise StructuredOutputError(f"does not validate as {fmt.model.__name__}: {_short(error)}", text) from None
    _validate_schema(value, fmt.schema or {}, text)
    return value


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise StructuredOutputError(f"not JSON: {error.msg} at character {error.pos}", text) from None


def _validate_schema(value: Any, schema: dict, text: str) -> None:
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise StructuredOutputError(f"does not validate against the schema at {where}: {error.message[:300]}", text)


def _short(error: Exception) -> str:
    return str(error).replace("\n", "; ")[:300]
