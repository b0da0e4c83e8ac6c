"""Confluent's JSON-Schema compatibility rules, over a table of schema changes.

Each row is an old schema, a new one, and whether the change is backward compatible (new
consumers read old events) and forward compatible (old consumers read new events); full
is both. Schemas are written the way pydantic writes them; ``x-tidings-extra: ignore``
marks tidings' default content model (closed as a writer, open as a reader).
"""

from __future__ import annotations

from typing import Any

import pytest

from tidings.schema.compat import Mode, check, differences

INT = {"type": "integer"}
NUM = {"type": "number"}
STR = {"type": "string"}


def obj(
    props: dict[str, Any], required: tuple[str, ...] = (), extra: str = "ignore"
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": list(required)}
    if extra == "ignore":
        schema["x-tidings-extra"] = "ignore"
    elif extra == "forbid":
        schema["additionalProperties"] = False
    elif extra == "allow":
        schema["additionalProperties"] = True
    return schema


def opt(schema: dict[str, Any], default: Any = None) -> dict[str, Any]:
    return {**schema, "default": default}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], "default": None}


def with_defs(root: dict[str, Any], **defs: dict[str, Any]) -> dict[str, Any]:
    return {**root, "$defs": defs}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


BASE = obj({"id": STR, "reason": STR}, ("id", "reason"))
ADDRESS = obj({"city": STR}, ("city",))
CARD = obj({"kind": {"const": "card", "type": "string"}, "last4": STR}, ("kind", "last4"))
BANK = obj({"kind": {"const": "bank", "type": "string"}, "iban": STR}, ("kind", "iban"))
WALLET = obj({"kind": {"const": "wallet", "type": "string"}, "app": STR}, ("kind", "app"))


def union(*names: str) -> dict[str, Any]:
    mapping = {n.lower(): f"#/$defs/{n}" for n in names}
    return {
        "oneOf": [ref(n) for n in names],
        "discriminator": {"propertyName": "kind", "mapping": mapping},
    }


def paid(*names: str) -> dict[str, Any]:
    return with_defs(
        obj({"method": union(*names)}, ("method",)), Card=CARD, Bank=BANK, Wallet=WALLET
    )


def lives(address: dict[str, Any]) -> dict[str, Any]:
    return with_defs(obj({"address": ref("Address")}, ("address",)), Address=address)


# (change, old, new, backward ok, forward ok)
TABLE: list[tuple[str, Any, Any, bool, bool]] = [
    (
        "add an optional field",
        BASE,
        obj({**BASE["properties"], "note": opt(STR, "")}, ("id", "reason")),
        True,
        True,
    ),
    (
        "add a required field",
        BASE,
        obj({**BASE["properties"], "note": STR}, ("id", "reason", "note")),
        False,
        True,
    ),
    (
        "add a required field with a default",
        BASE,
        obj({**BASE["properties"], "note": opt(STR, "")}, ("id", "reason", "note")),
        True,
        True,
    ),
    (
        "remove an optional field",
        obj({"id": STR, "note": opt(STR)}, ("id",)),
        obj({"id": STR}, ("id",)),
        True,
        True,
    ),
    ("remove a required field", BASE, obj({"id": STR}, ("id",)), True, False),
    (
        "optional field becomes required",
        obj({"id": STR, "r": opt(STR, "")}, ("id",)),
        BASE | {"properties": {"id": STR, "r": STR}, "required": ["id", "r"]},
        False,
        True,
    ),
    (
        "required field gets a default",
        BASE,
        obj({"id": STR, "reason": opt(STR, "")}, ("id",)),
        True,
        False,
    ),
    ("default value changed", obj({"n": opt(INT, 1)}), obj({"n": opt(INT, 2)}), True, True),
    ("widen integer to number", obj({"n": INT}, ("n",)), obj({"n": NUM}, ("n",)), True, False),
    ("narrow number to integer", obj({"n": NUM}, ("n",)), obj({"n": INT}, ("n",)), False, True),
    ("change string to integer", obj({"n": STR}, ("n",)), obj({"n": INT}, ("n",)), False, False),
    (
        "add an enum value",
        obj({"s": {"enum": ["a", "b"], "type": "string"}}, ("s",)),
        obj({"s": {"enum": ["a", "b", "c"], "type": "string"}}, ("s",)),
        True,
        False,
    ),
    (
        "remove an enum value",
        obj({"s": {"enum": ["a", "b"], "type": "string"}}, ("s",)),
        obj({"s": {"enum": ["a"], "type": "string"}}, ("s",)),
        False,
        True,
    ),
    (
        "closed model becomes open",
        obj({"id": STR}, ("id",), "forbid"),
        obj({"id": STR}, ("id",), "allow"),
        True,
        False,
    ),
    (
        "open model becomes closed",
        obj({"id": STR}, ("id",), "allow"),
        obj({"id": STR}, ("id",), "forbid"),
        False,
        True,
    ),
    (
        "default model becomes closed",
        obj({"id": STR}, ("id",)),
        obj({"id": STR}, ("id",), "forbid"),
        True,
        True,
    ),
    (
        "add an optional field to a closed model",
        obj({"id": STR}, ("id",), "forbid"),
        obj({"id": STR, "n": opt(INT, 0)}, ("id",), "forbid"),
        True,
        False,
    ),
    (
        "add an optional field to an open model",
        obj({"id": STR}, ("id",), "allow"),
        obj({"id": STR, "n": opt(INT, 0)}, ("id",), "allow"),
        False,
        True,
    ),
    (
        "remove an optional field from a closed model",
        obj({"id": STR, "n": opt(INT, 0)}, ("id",), "forbid"),
        obj({"id": STR}, ("id",), "forbid"),
        False,
        True,
    ),
    (
        "nested model gains a required field",
        lives(ADDRESS),
        lives(obj({"city": STR, "zip": STR}, ("city", "zip"))),
        False,
        True,
    ),
    (
        "nested model gains an optional field",
        lives(ADDRESS),
        lives(obj({"city": STR, "zip": opt(STR)}, ("city",))),
        True,
        True,
    ),
    (
        "nested model field changes type",
        lives(ADDRESS),
        lives(obj({"city": INT}, ("city",))),
        False,
        False,
    ),
    ("union member added", paid("Card", "Bank"), paid("Card", "Bank", "Wallet"), True, False),
    ("union member removed", paid("Card", "Bank"), paid("Card"), False, True),
    (
        "plain union member added",
        obj({"v": {"anyOf": [INT, STR]}}, ("v",)),
        obj({"v": {"anyOf": [INT, STR, {"type": "boolean"}]}}, ("v",)),
        True,
        False,
    ),
    (
        "field becomes nullable",
        BASE,
        obj({"id": STR, "reason": nullable(STR)}, ("id",)),
        True,
        False,
    ),
    (
        "maxLength lowered",
        obj({"s": {"type": "string", "maxLength": 10}}),
        obj({"s": {"type": "string", "maxLength": 5}}),
        False,
        True,
    ),
    (
        "array items widened",
        obj({"xs": {"type": "array", "items": INT}}),
        obj({"xs": {"type": "array", "items": NUM}}),
        True,
        False,
    ),
    (
        "title and description changed",
        obj({"n": INT | {"title": "N"}}),
        obj({"n": INT | {"title": "Count", "description": "how many"}}),
        True,
        True,
    ),
    (
        "recursive model unchanged",
        with_defs(ref("Node"), Node=obj({"child": nullable(ref("Node"))})),
        with_defs(ref("Node"), Node=obj({"child": nullable(ref("Node"))})),
        True,
        True,
    ),
]


@pytest.mark.parametrize(
    ("change", "old", "new", "backward", "forward"), TABLE, ids=[r[0] for r in TABLE]
)
def test_verdict_per_mode(change: str, old: Any, new: Any, backward: bool, forward: bool) -> None:
    def ok(mode: Mode) -> bool:
        return not check([old], new, mode)

    assert ok(Mode.BACKWARD) == backward, differences(old, new)
    assert ok(Mode.FORWARD) == forward, differences(new, old)
    assert ok(Mode.FULL) == (backward and forward)
    assert ok(Mode.NONE)


def test_the_table_is_large_enough() -> None:
    assert len(TABLE) >= 20


def test_transitive_modes_check_every_locked_schema() -> None:
    v1 = obj({"id": STR, "f": NUM}, ("id", "f"))
    v2 = obj({"id": STR}, ("id",))  # f removed: fine for new consumers
    v3 = obj({"id": STR, "f": opt(STR, "")}, ("id",))  # f is back, as a string
    assert not check([v1, v2], v3, Mode.BACKWARD)
    (br,) = check([v1, v2], v3, Mode.BACKWARD_TRANSITIVE)
    assert br.against == 0 and br.difference.kind == "TYPE_CHANGED" and br.difference.field == "f"
    assert check([v1, v2], v3, Mode.FULL_TRANSITIVE)


def test_differences_name_confluent_kinds_and_paths() -> None:
    new = obj({**BASE["properties"], "note": STR}, ("id", "reason", "note"))
    kinds = {(d.kind, d.field) for d in differences(BASE, new)}
    assert ("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "note") in kinds
