"""Reading JSON Schema nodes: references, the kind of a node, the members of a union."""

from __future__ import annotations

from typing import Any, Protocol

from tidings.schema.rules import Schema

_SCALARS = {"string", "number", "integer", "boolean", "null", "object", "array"}


def lookup(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#"):
        return True  # an external reference cannot be read offline: anything goes
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return True
        node = node[part]
    return node if isinstance(node, dict | bool) else True


def kind(node: Schema) -> str:
    if node is True or node == {}:
        return "empty"
    if node is False:
        return "false"
    assert isinstance(node, dict)
    if "enum" in node or "const" in node:
        return "enum"
    if any(k in node for k in ("anyOf", "oneOf", "allOf")):
        return "combined"
    if "not" in node:
        return "not"
    declared = node.get("type")
    if isinstance(declared, list):
        return "combined" if len(declared) > 1 else kind({**node, "type": declared[0]})
    if declared in ("integer", "number"):
        return "number"
    if declared in _SCALARS:
        return str(declared)
    if "properties" in node or "additionalProperties" in node:
        return "object"
    if "items" in node or "prefixItems" in node:
        return "array"
    return "empty"


def criterion(node: Schema) -> str:
    assert isinstance(node, dict)
    for name in ("anyOf", "oneOf", "allOf"):
        if name in node:
            return name
    return "anyOf"  # "type": [a, b] reads as anyOf


def members(node: Schema) -> list[Schema]:
    assert isinstance(node, dict)
    for name in ("anyOf", "oneOf", "allOf"):
        if name in node:
            return list(node[name])
    rest = {k: v for k, v in node.items() if k != "type"}
    return [{**rest, "type": t} for t in node.get("type", [])]


class Adds(Protocol):
    def add(self, kind: str, path: tuple[str, ...]) -> None: ...


def bounds(
    ctx: Adds, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...], key: str, up: str
) -> None:
    """A numeric bound: `up` says which direction loosens it ("max" or "min")."""
    name = {
        "maxLength": "MAX_LENGTH",
        "minLength": "MIN_LENGTH",
        "maximum": "MAXIMUM",
        "minimum": "MINIMUM",
        "exclusiveMaximum": "EXCLUSIVE_MAXIMUM",
        "exclusiveMinimum": "EXCLUSIVE_MINIMUM",
        "maxItems": "MAX_ITEMS",
        "minItems": "MIN_ITEMS",
        "maxProperties": "MAX_PROPERTIES",
        "minProperties": "MIN_PROPERTIES",
    }[key]
    old, new = w.get(key), r.get(key)
    if old == new:
        return
    if old is None:
        ctx.add(f"{name}_ADDED", (*path, key))
    elif new is None:
        ctx.add(f"{name}_REMOVED", (*path, key))
    elif (new > old) == (up == "max"):
        ctx.add(f"{name}_{'INCREASED' if up == 'max' else 'DECREASED'}", (*path, key))
    else:
        ctx.add(f"{name}_{'DECREASED' if up == 'max' else 'INCREASED'}", (*path, key))
