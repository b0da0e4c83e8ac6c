"""Breaking changes in words: what changed, who cannot read what, and how to fix it."""

from __future__ import annotations

from tidings.schema.compat import Break

BUMP = "or bump the version (`version=N+1`) and add an upcaster"
KEEP = "keep it as it was, " + BUMP

# (kind, direction) -> what happened (with {f} for the field) and the fix.
_TEXT: dict[tuple[str, str], tuple[str, str]] = {
    ("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "backward"): (
        "field {f} became required",
        "give it a default, " + BUMP,
    ),
    ("REQUIRED_ATTRIBUTE_ADDED", "backward"): (
        "field {f} became required",
        "give it a default, " + BUMP,
    ),
    ("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "forward"): (
        "field {f} was removed, but consumers on the locked schema require it",
        "keep the field, " + BUMP,
    ),
    ("REQUIRED_ATTRIBUTE_ADDED", "forward"): (
        "field {f} became optional, but consumers on the locked schema require it",
        "keep it required, " + BUMP,
    ),
    ("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "backward"): (
        "field {f} was removed from a closed model (extra='forbid'): events that carry it "
        "would be rejected",
        "keep the field (it may be optional), allow extra fields, " + BUMP,
    ),
    ("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "forward"): (
        "field {f} was added, but consumers on the locked closed model (extra='forbid') "
        "reject fields they do not know",
        "deploy the consumers with the field first (lock in between), " + BUMP,
    ),
    ("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "backward"): (
        "field {f} was added to an open model (extra='allow'): old events may carry {f} "
        "with any value",
        "give it the empty schema (Any), close the model, " + BUMP,
    ),
    ("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "forward"): (
        "field {f} was removed from an open model (extra='allow'): consumers on the locked "
        "schema expect its type, and new events may carry {f} with any value",
        "keep the field, " + BUMP,
    ),
    ("TYPE_CHANGED", "backward"): ("field {f} changed type", KEEP),
    ("TYPE_CHANGED", "forward"): ("field {f} changed type", KEEP),
    ("TYPE_NARROWED", "backward"): (
        "field {f} was narrowed (number to integer): old events may not fit",
        "keep the wider type, " + BUMP,
    ),
    ("TYPE_NARROWED", "forward"): (
        "field {f} was widened (integer to number): consumers on the locked schema expect integers",
        "keep the narrower type, " + BUMP,
    ),
    ("ENUM_ARRAY_NARROWED", "backward"): (
        "field {f} lost enum values that old events may carry",
        "keep the values, " + BUMP,
    ),
    ("ENUM_ARRAY_NARROWED", "forward"): (
        "field {f} gained enum values that consumers on the locked schema reject",
        "deploy the consumers first (lock in between), " + BUMP,
    ),
    ("ENUM_ARRAY_CHANGED", "backward"): ("field {f} changed its enum values", KEEP),
    ("ENUM_ARRAY_CHANGED", "forward"): ("field {f} changed its enum values", KEEP),
    ("SUM_TYPE_NARROWED", "backward"): (
        "the union {f} lost members that old events may carry",
        "keep the members, " + BUMP,
    ),
    ("SUM_TYPE_NARROWED", "forward"): (
        "the union {f} gained members that consumers on the locked schema reject",
        "deploy the consumers first (lock in between), " + BUMP,
    ),
    ("ADDITIONAL_PROPERTIES_REMOVED", "backward"): (
        "the model {f} became closed (extra='forbid'), but old events may carry other fields",
        "keep extra='ignore' or 'allow', " + BUMP,
    ),
    ("ADDITIONAL_PROPERTIES_REMOVED", "forward"): (
        "the model {f} became open (extra='allow'), but consumers on the locked closed "
        "schema reject other fields",
        "keep it closed, " + BUMP,
    ),
}


def explain(br: Break) -> str:
    """One sentence: the change, the direction that breaks, and the fix."""
    d = br.difference
    name = f"`{d.field}`" if d.field else "the event"
    what, fix = _TEXT.get(
        (d.kind, br.direction),
        (f"{d.kind.lower().replace('_', ' ')} at {name}", "make the change compatible, " + BUMP),
    )
    who = (
        "new consumers cannot read events already written"
        if br.direction == "backward"
        else "consumers on the locked schema cannot read new events"
    )
    return f"{what.format(f=name)} ({br.direction}: {who}): {fix}."
