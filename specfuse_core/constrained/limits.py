"""Size and shape limits a schema or grammar must meet before the grammar engine sees it.

A response format is user input: a recursive schema, a 100,000-value enum or a megabyte regex could
make compilation slow or the output unbounded. These checks are pure Python, run in microseconds and
raise :class:`~specfuse_core.errors.UnsupportedSchemaError` before any engine or model work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import UnsupportedSchemaError


class SchemaLimits(BaseModel):
    """Limits for one constrained request. ``allow_recursive`` admits ``$ref`` cycles (a tree
    schema); a cycle with no way out then runs until the token budget and fails validation."""

    model_config = ConfigDict(frozen=True)

    max_source_chars: int = 100_000
    max_enum_values: int = 1_000
    max_depth: int = 32
    allow_recursive: bool = False
    max_compile_seconds: float = 2.0


def check_source_size(source: str, limits: SchemaLimits, what: str) -> None:
    if len(source) > limits.max_source_chars:
        raise UnsupportedSchemaError(
            f"{what} is {len(source):,} characters, over the limit of {limits.max_source_chars:,} "
            f"(SchemaLimits.max_source_chars)"
        )


def check_schema(schema: Any, limits: SchemaLimits) -> None:
    """Reject a JSON Schema that is not an object, nests too deeply, enumerates too many values,
    refers outside itself, or (unless allowed) refers to itself."""
    if not isinstance(schema, dict):
        raise UnsupportedSchemaError(f"a JSON Schema must be an object, not {type(schema).__name__}")
    enum_values = 0
    for node, depth in _nodes(schema, 0):
        if depth > limits.max_depth:
            raise UnsupportedSchemaError(f"schema nests deeper than {limits.max_depth} levels (SchemaLimits.max_depth)")
        if isinstance(node.get("enum"), list):
            enum_values += len(node["enum"])
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise UnsupportedSchemaError(f"schema refers to {ref!r}: only local references ('#/...') are resolved")
    if enum_values > limits.max_enum_values:
        raise UnsupportedSchemaError(
            f"schema enumerates {enum_values:,} values, over the limit of {limits.max_enum_values:,} "
            f"(SchemaLimits.max_enum_values)"
        )
    if not limits.allow_recursive:
        cycle = _ref_cycle(schema)
        if cycle:
            raise UnsupportedSchemaError(
                "schema is recursive (" + " -> ".join(cycle) + "); set SchemaLimits(allow_recursive=True) "
                "to constrain to it anyway"
            )


def _nodes(node: Any, depth: int) -> Iterator[tuple[dict, int]]:
    """Every dict in the schema with its nesting depth (lists do not add a level)."""
    if isinstance(node, dict):
        yield node, depth
        for value in node.values():
            yield from _nodes(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value, depth)


def _refs(node: Any) -> set[str]:
    return {n["$ref"] for n, _ in _nodes(node, 0) if isinstance(n.get("$ref"), str)}


def _resolve(schema: dict, ref: str) -> Any:
    node: Any = schema
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise UnsupportedSchemaError(f"schema reference {ref!r} points to nothing")
        node = node[part]
    return node


def _ref_cycle(schema: dict) -> list[str] | None:
    """A chain of local references that comes back to where it started, or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(ref: str, path: list[str]) -> list[str] | None:
        if state.get(ref) == 1:
            return path[path.index(ref):] + [ref]
        if state.get(ref) == 2:
            return None
        state[ref] = 1
        for nxt in sorted(_refs(_resolve(schema, ref))):
            found = visit(nxt, path + [ref])
            if found:
                return found
        state[ref] = 2
        return None

    for ref in sorted(_refs(schema)):
        found = visit(ref, [])
        if found:
            return found
    return None
