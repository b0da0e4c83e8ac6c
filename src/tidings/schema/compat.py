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

from dataclasses import dataclass
from enum import StrEnum

from tidings.schema.diff import differences
from tidings.schema.rules import COMPATIBLE, Difference, Schema

__all__ = ["COMPATIBLE", "Break", "Difference", "Mode", "breaking", "check", "differences"]


class Mode(StrEnum):
    BACKWARD = "backward"
    BACKWARD_TRANSITIVE = "backward_transitive"
    FORWARD = "forward"
    FORWARD_TRANSITIVE = "forward_transitive"
    FULL = "full"
    FULL_TRANSITIVE = "full_transitive"
    NONE = "none"


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
