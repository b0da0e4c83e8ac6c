"""The comparison of a writer's schema with a reader's (Confluent's ``SchemaDiff``)."""

from __future__ import annotations

from typing import Any

from tidings.schema.nodes import bounds, criterion, kind, lookup, members
from tidings.schema.objects import compare_objects
from tidings.schema.rules import Difference, Schema


def differences(writer: Schema, reader: Schema) -> list[Difference]:
    """How `reader` differs from `writer` (both whole documents, `$defs` resolved within)."""
    ctx = Context(writer, reader)
    ctx.compare(writer, reader, ())
    return ctx.found


class Context:
    """The differences found so far, and the pairs of nodes being compared."""

    def __init__(self, writer_root: Schema, reader_root: Schema) -> None:
        self.roots = (writer_root, reader_root)
        self.found: list[Difference] = []
        self._seen: set[tuple[int, int]] = set()

    def add(self, kind: str, path: tuple[str, ...]) -> None:
        self.found.append(Difference(kind, path))

    def sub(self) -> Context:
        ctx = Context(*self.roots)
        ctx._seen = set(self._seen)
        return ctx

    def resolve(self, node: Schema, side: int) -> Schema:
        for _ in range(64):  # a chain of $refs, not a cycle: cycles are cut in compare()
            if not isinstance(node, dict) or "$ref" not in node:
                return node
            node = lookup(self.roots[side], node["$ref"])
        return node

    def compare(self, writer: Schema, reader: Schema, path: tuple[str, ...]) -> None:
        writer, reader = self.resolve(writer, 0), self.resolve(reader, 1)
        pair = (id(writer), id(reader))
        if pair in self._seen:
            return  # a recursive model: this pair is being compared further up
        self._seen.add(pair)
        w_kind, r_kind = kind(writer), kind(reader)
        if w_kind != "combined" and r_kind == "combined":
            options = members(reader)
            if len(options) == 1 or criterion(reader) in ("anyOf", "oneOf"):
                for member in options:
                    sub = self.sub()
                    sub.compare(writer, member, path)
                    if sub.compatible:
                        self.found += sub.found
                        if len(options) > 1:
                            self.add("SUM_TYPE_EXTENDED", path)
                        return
        elif w_kind == "combined" and r_kind != "combined" and len(members(writer)) == 1:
            sub = self.sub()
            sub.compare(members(writer)[0], reader, path)
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


def _string(ctx: Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    bounds(ctx, w, r, path, "maxLength", "max")
    bounds(ctx, w, r, path, "minLength", "min")
    if w.get("pattern") != r.get("pattern"):
        kind = "PATTERN_" + (
            "ADDED" if "pattern" not in w else "REMOVED" if "pattern" not in r else "CHANGED"
        )
        ctx.add(kind, (*path, "pattern"))


def _number(ctx: Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    w_int, r_int = w.get("type") == "integer", r.get("type") == "integer"
    if w_int and not r_int:
        ctx.add("TYPE_EXTENDED", path)
    elif r_int and not w_int:
        ctx.add("TYPE_NARROWED", path)
    for key in ("maximum", "exclusiveMaximum"):
        bounds(ctx, w, r, path, key, "max")
    for key in ("minimum", "exclusiveMinimum"):
        bounds(ctx, w, r, path, key, "min")
    if w.get("multipleOf") != r.get("multipleOf"):
        ctx.add("MULTIPLE_OF_" + ("REMOVED" if "multipleOf" not in r else "CHANGED"), path)


def _values(node: dict[str, Any]) -> list[Any]:
    return list(node["enum"]) if "enum" in node else [node.get("const")]


def _enum(ctx: Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    old, new = _values(w), _values(r)
    if all(v in new for v in old) and all(v in old for v in new):
        return
    if all(v in new for v in old):
        ctx.add("ENUM_ARRAY_EXTENDED", path)
    elif all(v in old for v in new):
        ctx.add("ENUM_ARRAY_NARROWED", path)
    else:
        ctx.add("ENUM_ARRAY_CHANGED", path)


def _combined(ctx: Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    wc, rc = criterion(w), criterion(r)
    olds, news = _unique(members(w)), _unique(members(r))
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


def _array(ctx: Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]) -> None:
    bounds(ctx, w, r, path, "maxItems", "max")
    bounds(ctx, w, r, path, "minItems", "min")
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


_BY_KIND = {
    "string": _string,
    "number": _number,
    "enum": _enum,
    "combined": _combined,
    "object": compare_objects,
    "array": _array,
}
