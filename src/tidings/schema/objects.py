"""Objects: properties, required fields and content models (open, closed, partially open).

A node's content model depends on its role for `x-tidings-extra: ignore` (see compat).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tidings.schema.nodes import bounds, kind
from tidings.schema.rules import Schema

if TYPE_CHECKING:
    from tidings.schema.diff import Context


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


def compare_objects(
    ctx: Context, w: dict[str, Any], r: dict[str, Any], path: tuple[str, ...]
) -> None:
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
                if kind(r_props[name]) == "empty":
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
    bounds(ctx, w, r, path, "maxProperties", "max")
    bounds(ctx, w, r, path, "minProperties", "min")


def _extra(ctx: Context, w: dict[str, Any], r: dict[str, Any], where: tuple[str, ...]) -> None:
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
    ctx: Context, writer: Schema, reader: Schema, where: tuple[str, ...], how: str
) -> None:
    sub = ctx.sub()
    sub.compare(writer, reader, where)
    ctx.found += sub.found
    verdict = "IS_COVERED" if sub.compatible else "NOT_COVERED"
    ctx.add(f"PROPERTY_{how}_{verdict}_BY_PARTIALLY_OPEN_CONTENT_MODEL", where)


def _has_default(node: Schema) -> bool:
    return isinstance(node, dict) and "default" in node
