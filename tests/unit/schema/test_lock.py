"""The lock file's history and the findings of a check, without an app."""

from __future__ import annotations

from typing import Any

from tidings.schema.compat import Mode
from tidings.schema.lock import compare, empty, update


def obj(*required: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "x-tidings-extra": "ignore",
    }


V1 = obj("id", id={"type": "string"})
V1B = obj("id", id={"type": "string"}, note={"type": "string", "default": ""})


def test_lock_appends_a_changed_schema_and_keeps_old_versions() -> None:
    lock = update(empty("a"), {"E": (1, V1)})
    assert update(lock, {"E": (1, V1)}) == lock  # unchanged: nothing appended
    lock = update(lock, {"E": (1, V1B)})
    lock = update(lock, {"E": (2, V1)})
    assert lock["events"]["E"]["versions"] == {"1": [V1, V1B], "2": [V1]}


def test_findings_name_new_types_versions_and_missing_upcasters() -> None:
    lock = update(empty("a"), {"E": (1, V1), "Gone": (1, V1)})
    report = compare(lock, {"E": (2, V1), "New": (1, V1)}, Mode.BACKWARD, {"E": [1]})
    texts = {(f.event, f.error): f.text for f in report.findings}
    assert "no upcaster from version 1" in texts[("E", True)]
    assert "new version 2" in texts[("E", False)]
    assert "new event type" in texts[("New", False)]
    assert "no longer published or consumed" in texts[("Gone", False)]


def test_a_version_going_back_is_an_error() -> None:
    lock = update(empty("a"), {"E": (2, V1)})
    (finding,) = compare(lock, {"E": (1, V1)}, Mode.BACKWARD, {}).errors
    assert "is at version 1 but the lock has version 2" in finding.text


def test_forward_breaks_say_who_cannot_read_what() -> None:
    lock = update(
        empty("a"), {"E": (1, obj("id", "n", id={"type": "string"}, n={"type": "integer"}))}
    )
    (finding,) = compare(lock, {"E": (1, V1)}, Mode.FORWARD, {}).errors
    assert "field `n` was removed, but consumers on the locked schema require it" in finding.text
    assert "consumers on the locked schema cannot read new events" in finding.text
