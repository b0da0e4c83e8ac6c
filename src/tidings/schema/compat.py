"""JSON-Schema compatibility, after the rules of the Confluent Schema Registry.

`differences(writer, reader)` lists how `reader` differs from `writer` (Confluent's
``SchemaDiff.compare(original, update)``), each difference named as Confluent names it and
marked compatible or not by Confluent's list of compatible changes. A mode picks the pairs:
``backward`` (the new schema reads data written with the old one), ``forward`` (the old
schema reads data written with the new one), ``full`` (both); ``*_transitive`` checks
against every locked schema of the version, not only the latest.

Content models: ``additionalProperties: false`` (pydantic ``extra="forbid"``) is closed,
``true`` or a schema (``extra="allow"``) is open. An object marked ``x-tidings-extra:
ignore`` (pydantic's and tidings' default, ``extra="ignore"``) is closed as the writer's
schema (a model never serializes an undeclared field) and open as the reader's (undeclared
fields are dropped on validation): the rules are Confluent's, applied to what each side does.
Pure functions over JSON Schema dicts: no I/O, no pydantic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Schema = dict[str, Any] | bool

COMPATIBLE = frozenset(
    {
        "ID_CHANGED",
        "DESCRIPTION_CHANGED",
        "TITLE_CHANGED",
        "DEFAULT_CHANGED",
        "SCHEMA_REMOVED",
        "TYPE_EXTENDED",
        "MAX_LENGTH_INCREASED",
        "MAX_LENGTH_REMOVED",
        "MIN_LENGTH_DECREASED",
        "MIN_LENGTH_REMOVED",
        "PATTERN_REMOVED",
        "MAXIMUM_INCREASED",
        "MAXIMUM_REMOVED",
        "MINIMUM_DECREASED",
        "MINIMUM_REMOVED",
        "EXCLUSIVE_MAXIMUM_INCREASED",
        "EXCLUSIVE_MAXIMUM_REMOVED",
        "EXCLUSIVE_MINIMUM_DECREASED",
        "EXCLUSIVE_MINIMUM_REMOVED",
        "MULTIPLE_OF_REMOVED",
        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
        "REQUIRED_ATTRIBUTE_REMOVED",
        "MAX_PROPERTIES_INCREASED",
        "MAX_PROPERTIES_REMOVED",
        "MIN_PROPERTIES_DECREASED",
        "MIN_PROPERTIES_REMOVED",
        "ADDITIONAL_PROPERTIES_ADDED",
        "ADDITIONAL_PROPERTIES_EXTENDED",
        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "MAX_ITEMS_INCREASED",
        "MAX_ITEMS_REMOVED",
        "MIN_ITEMS_DECREASED",
        "MIN_ITEMS_REMOVED",
        "UNIQUE_ITEMS_REMOVED",
        "ENUM_ARRAY_EXTENDED",
        "COMBINED_TYPE_EXTENDED",
        "PRODUCT_TYPE_NARROWED",
        "SUM_TYPE_EXTENDED",
    }
)
"""Confluent's compatible differences (those a reader can always absorb)."""


class Mode(StrEnum):
    BACKWARD = "backward"
    BACKWARD_TRANSITIVE = "backward_transitive"
    FORWARD = "forward"
    FORWARD_TRANSITIVE = "forward_transitive"
    FULL = "full"
    FULL_TRANSITIVE = "full_transitive"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference between a writer's and a reader's schema, at a JSON path."""

    kind: str
    path: tuple[str, ...]

    @property
    def compatible(self) -> bool:
        return self.kind in COMPATIBLE

    @property
    def field(self) -> str:
        """The dotted field name the path points into ("" for the event itself)."""
        names: list[str] = []
        segments = list(self.path)
        for i, seg in enumerate(segments[:-1]):
            if seg in ("properties", "required"):
                names.append(segments[i + 1])
        return ".".join(names)


def differences(writer: Schema, reader: Schema) -> list[Difference]:
    """How `reader` differs from `writer` (both whole documents, `$defs` resolved within)."""
    ctx = _Context(writer, reader)
    ctx.compare(writer, reader, ())
    return ctx.found


def breaking(writer: Schema, reader: Schema) -> list[Difference]:
    """The differences that make `reader` unable to read data written with `writer`."""
    return [d for d in differences(writer, reader) if not d.compatible]


@dataclass(frozen=True, slots=True)
class Break:
    """An incompatible difference found by a check: who cannot read whom, and where."""

    direction: str  # "backward": new consumers vs old events; "forward": the reverse
    against: int  # index of the locked schema compared with
    difference: Difference


def check(history: list[Schema], current: Schema, mode: Mode) -> list[Break]:
    """Check `current` against the locked `history` (oldest first) under `mode`."""
    if mode is Mode.NONE or not history:
        return []
    indexes = range(len(history)) if mode.value.endswith("_transitive") else [len(history) - 1]
    base = mode.value.removesuffix("_transitive")
    found: list[Break] = []
    for i in indexes:
        if base in ("backward", "full"):
            found += [Break("backward", i, d) for d in breaking(history[i], current)]
        if base in ("forward", "full"):
            found += [Break("forward", i, d) for d in breaking(current, history[i])]
    return found


# -- the comparison ---------------------------------------------------------------------

_SCALARS = {"string", "number", "integer", "boolean", "null", "object", "array"}


class _Context:
    def __init__(self, writer_root: Schema, reader_root: Schema) -> None:
        self.roots = (writer_root, reader_root)
        self.found: list[Difference] = []
        self._seen: set[tuple[int, int]] = set()

    def add(self, kind: str, path: tuple[str, ...]) -> None:
        self.found.append(Difference(kind, path))

    def sub(self) -> _Context:
        ctx = _Context(*self.roots)
        ctx._seen = set(self._seen)
        return ctx

    def resolve(self, node: Schema, side: int) -> Schema:
        for _ in range(64):  # a chain of $refs, not a cycle: cycles are cut in compare()
            if not isinstance(node, dict) or "$ref" not in node:
                return node
            node = _lookup(self.roots[side], node["$ref"])
        return node

    def compare(self, writer: Schema, reader: Schema, path: tuple[str, ...]) -> None:
        writer, reader = self.resolve(writer, 0), self.resolve(reader, 1)
        pair = (id(writer), id(reader))
        if pair in self._seen:
            return  # a recursive model: this pair is being compared further up
        self._seen.add(pair)
        w_kind, r_kind = _kind(writer), _kind(reader)
        if w_kind != "combined" and r_kind == "combined":
            members = _members(reader)
            if len(members) == 1 or _criterion(reader) in ("anyOf", "oneOf"):
                for member in members:
                    sub = self.sub()
                    sub.compare(writer, member, path)
                    if sub.compatible:
                        self.found += sub.found
                        if len(members) > 1:
                            self.add("SUM_TYPE_EXTENDED", path)
                        return
        elif w_kind == "combined" and r_kind != "combined" and len(_members(writer)) == 1:
            sub = self.sub()
            sub.compare(_members(writer)[0], reader, path)
            if sub.compatible:
                self.found += sub.found
                return
        if w_kind != r_kind and not (w_kind == "number" and r_kind == "number"):
            if w_kind == "false" or r_kind == "empty":
                return
            self.add("TYPE_CHANGED", path)
            return
        assert isinstance(writer, dict) and isinstance(reader, dict)
        if writer.get("default", _NO) != reader.get("default", _NO):
            self.add("DEFAULT_CHANGED", path)
        compare = _BY_KIND.get(w_kind)
        if compare is not None:
            compare(self, writer, reader, path)

    @property
    def compatible(self) -> bool:
        return all(d.compatible for d in self.found)


_NO = object()


def _lookup(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#"):
        return True  # an external reference cannot be read offline: anything goes
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return True
        node = node[part]
    return node if isinstance(node, dict | bool) else True


def _kind(node: Schema) -> str:
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
    kind = node.get("type")
    if isinstance(kind, list):
        return "combined" if len(kind) > 1 else _kind({**node, "type": kind[0]})
    if kind in ("integer", "number"):
        return "number"
    if kind in _SCALARS:
        return str(kind)
    if "properties" in node or "additionalProperties" in node:
        return "object"
    if "items" in node or "prefixItems" in node:
        return "array"
    return "empty"


def _criterion(node: Schema) -> str:
    assert isinstance(node, dict)
    for name in ("anyOf", "oneOf", "allOf"):
        if name in node:
            return name
    return "anyOf"  # "type": [a, b] reads as anyOf


def _members(node: Schema) -> list[Schema]:
    assert isinstance(node, dict)
    for name in ("anyOf", "oneOf", "allOf"):
        if name in node:
            return list(node[name])
    rest = {k: v for k, v in node.items() if k != "type"}
    return [{**rest, "type": t} for t in node.get("type", [])]


def _bounds(
    ctx: _Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...], key: str, up: str
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


def _string(ctx: _Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    _bounds(ctx, w, r, path, "maxLength", "max")
    _bounds(ctx, w, r, path, "minLength", "min")
    if w.get("pattern") != r.get("pattern"):
        kind = "PATTERN_" + (
            "ADDED" if "pattern" not in w else "REMOVED" if "pattern" not in r else "CHANGED"
        )
        ctx.add(kind, (*path, "pattern"))


def _number(ctx: _Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    w_int, r_int = w.get("type") == "integer", r.get("type") == "integer"
    if w_int and not r_int:
        ctx.add("TYPE_EXTENDED", path)
    elif r_int and not w_int:
        ctx.add("TYPE_NARROWED", path)
    for key in ("maximum", "exclusiveMaximum"):
        _bounds(ctx, w, r, path, key, "max")
    for key in ("minimum", "exclusiveMinimum"):
        _bounds(ctx, w, r, path, key, "min")
    if w.get("multipleOf") != r.get("multipleOf"):
        ctx.add("MULTIPLE_OF_" + ("REMOVED" if "multipleOf" not in r else "CHANGED"), path)


def _values(node: dict[str, Any]) -> list[Any]:
    return list(node["enum"]) if "enum" in node else [node.get("const")]


def _enum(ctx: _Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    old, new = _values(w), _values(r)
    if all(v in new for v in old) and all(v in old for v in new):
        return
    if all(v in new for v in old):
        ctx.add("ENUM_ARRAY_EXTENDED", path)
    elif all(v in old for v in new):
        ctx.add("ENUM_ARRAY_NARROWED", path)
    else:
        ctx.add("ENUM_ARRAY_CHANGED", path)


def _combined(ctx: _Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    wc, rc = _criterion(w), _criterion(r)
    olds, news = _unique(_members(w)), _unique(_members(r))
    if wc != rc:
        singleton = len(olds) == 1
        if rc == "anyOf" or (rc == "oneOf" and singleton) or (singleton and len(news) == 1):
            ctx.add("COMBINED_TYPE_EXTENDED", path)
        else:
            ctx.add("COMBINED_TYPE_CHANGED", path)
            return
    if len(olds) != len(news):
        prefix = "PRODUCT" if rc == "allOf" else "SUM"
        ctx.add(f"{prefix}_TYPE_{'EXTENDED' if len(olds) < len(news) else 'NARROWED'}", path)
    edges: dict[int, dict[int, list[Difference]]] = {}
    for i, old in enumerate(olds):
        for j, new in enumerate(news):
            sub = ctx.sub()
            sub.compare(old, new, (*path, wc, str(i)))
            if sub.compatible:
                edges.setdefault(i, {})[j] = sub.found
    matching = _match(edges, len(olds))
    for i, j in matching.items():
        ctx.found += edges[i][j]
    if len(matching) < min(len(olds), len(news)):
        ctx.add("COMBINED_TYPE_SUBSCHEMAS_CHANGED", path)


def _unique(members: list[Schema]) -> list[Schema]:
    out: list[Schema] = []
    for m in members:
        if m not in out:
            out.append(m)
    return out


def _match(edges: dict[int, dict[int, list[Difference]]], left: int) -> dict[int, int]:
    """A maximum bipartite matching (augmenting paths): left index -> right index."""
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges.get(i, {}):
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(left):
        augment(i, set())
    return {i: j for j, i in owner.items()}


def _array(ctx: _Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    _bounds(ctx, w, r, path, "maxItems", "max")
    _bounds(ctx, w, r, path, "minItems", "min")
    if w.get("uniqueItems") != r.get("uniqueItems"):
        ctx.add("UNIQUE_ITEMS_" + ("ADDED" if r.get("uniqueItems") else "REMOVED"), path)
    old_items, new_items = w.get("items", True), r.get("items", True)
    ctx.compare(old_items, new_items, (*path, "items"))
    olds, news = list(w.get("prefixItems", [])), list(r.get("prefixItems", []))
    for i in range(max(len(olds), len(news))):
        ctx.compare(
            olds[i] if i < len(olds) else old_items,
            news[i] if i < len(news) else new_items,
            (*path, "prefixItems", str(i)),
        )


def _permits(node: dict[str, Any], writer: bool) -> bool:
    extra = node.get("additionalProperties", True)
    if extra is False:
        return False
    # An extra="ignore" model never writes undeclared fields, and drops them when it reads.
    return not (node.get("x-tidings-extra") == "ignore" and writer)


def _extra_schema(node: dict[str, Any]) -> Schema | None:
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) and extra != {} else None


def _is_open(node: dict[str, Any], writer: bool) -> bool:
    return (
        not node.get("patternProperties") and _extra_schema(node) is None and _permits(node, writer)
    )


def _partial(node: dict[str, Any], name: str, writer: bool) -> Schema | None:
    for pattern, schema in (node.get("patternProperties") or {}).items():
        if re.search(pattern, name):
            return schema  # type: ignore[no-any-return]
    return _extra_schema(node) if _permits(node, writer) else None


def _object(ctx: _Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    w_props: dict[str, Any] = w.get("properties") or {}
    r_props: dict[str, Any] = r.get("properties") or {}
    w_req, r_req = set(w.get("required") or ()), set(r.get("required") or ())
    for name in w_props:
        if name in r_props and (name in w_req) != (name in r_req):
            where = (*path, "required", name)
            if name in w_req:
                ctx.add("REQUIRED_ATTRIBUTE_REMOVED", where)
            elif _has_default(r_props[name]):
                ctx.add("REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", where)
            else:
                ctx.add("REQUIRED_ATTRIBUTE_ADDED", where)
    for name in sorted(set(w_props) | set(r_props)):
        where = (*path, "properties", name)
        if name not in r_props:
            if _is_open(r, writer=False):
                ctx.add("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", where)
            elif (covered := _partial(r, name, writer=False)) is not None:
                _covered(ctx, w_props[name], covered, where, "REMOVED")
            elif w_props[name] is False:
                ctx.add("PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", where)
            else:
                ctx.add("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", where)
        elif name not in w_props:
            if _is_open(w, writer=True):
                if _kind(r_props[name]) == "empty":
                    ctx.add("PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", where)
                else:
                    ctx.add("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", where)
                continue
            covered = _partial(w, name, writer=True)
            if covered is not None:
                _covered(ctx, covered, r_props[name], where, "ADDED")
            if name in r_req:
                if _has_default(r_props[name]):
                    ctx.add("REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL", where)
                else:
                    ctx.add("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where)
            else:
                ctx.add("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where)
        else:
            ctx.compare(w_props[name], r_props[name], where)
    where = (*path, "additionalProperties")
    if w.get("x-tidings-extra") == r.get("x-tidings-extra") == "ignore":
        pass  # the same default model on both sides: nothing to compare
    else:
        _extra(ctx, w, r, where)
    _bounds(ctx, w, r, path, "maxProperties", "max")
    _bounds(ctx, w, r, path, "minProperties", "min")


def _extra(ctx: _Context, w: dict[str, Any], r: dict[str, Any], where: tuple[str, ...]) -> None:
    w_permits, r_permits = _permits(w, writer=True), _permits(r, writer=False)
    w_extra, r_extra = _extra_schema(w), _extra_schema(r)
    if w_permits != r_permits:
        ctx.add(
            "ADDITIONAL_PROPERTIES_ADDED" if r_permits else "ADDITIONAL_PROPERTIES_REMOVED", where
        )
    elif w_extra is None and r_extra is not None:
        ctx.add("ADDITIONAL_PROPERTIES_NARROWED", where)
    elif r_extra is None and w_extra is not None:
        ctx.add("ADDITIONAL_PROPERTIES_EXTENDED", where)
    elif w_extra is not None and r_extra is not None:
        ctx.compare(w_extra, r_extra, where)


def _covered(
    ctx: _Context, writer: Schema, reader: Schema, where: tuple[str, ...], how: str
) -> None:
    sub = ctx.sub()
    sub.compare(writer, reader, where)
    ctx.found += sub.found
    verdict = "IS_COVERED" if sub.compatible else "NOT_COVERED"
    ctx.add(f"PROPERTY_{how}_{verdict}_BY_PARTIALLY_OPEN_CONTENT_MODEL", where)


def _has_default(node: Schema) -> bool:
    return isinstance(node, dict) and "default" in node


_BY_KIND = {
    "string": _string,
    "number": _number,
    "enum": _enum,
    "combined": _combined,
    "object": _object,
    "array": _array,
}
