"""Building a dead letter never raises, whatever the record holds."""

from __future__ import annotations

import math

import pytest

from tidings.exceptions import EventTooLarge
from tidings.records import Record
from tidings.runtime.dead_letters import dead_letter


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize("timestamp", [1e300, -1e300, math.inf, math.nan, "soon", None, -0.005])
@pytest.mark.parametrize(
    ("key", "headers"),
    [
        (None, ()),
        (b"\xff\x00", (("blob", bytes(range(256))), ("big", b"x" * 2_000_000))),
        (
            b"k",
            (("tidings-retry-original-topic", b"\xff"), ("tidings-retry-original-offset", b"x")),
        ),
    ],
)
def test_dead_letter_headers_never_raise(timestamp: object, key: bytes | None, headers) -> None:  # type: ignore[no-untyped-def]
    record = Record("t", 0, 5, key, b"\x80", headers, timestamp)  # type: ignore[arg-type]
    for drop in (None, EventTooLarge("too big")):
        out = dead_letter(
            record,
            group="g",
            reason="bad_timestamp",
            error=Unprintable(),
            attempts=1,
            now=1e300,
            drop_value=drop,
        )
        found = dict(out.headers)
        assert found["tidings-dlq-reason"] == b"bad_timestamp"
        assert b"could not be rendered" in found["tidings-dlq-error-message"]
        assert (out.value is None) == (drop is not None)
        if drop is not None:
            assert "big" not in found
            assert b"t[0]@5" in found["tidings-dlq-value-dropped"]
