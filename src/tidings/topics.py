"""Topic declarations against the topics that exist: what differs, and what to do about it.

A declaration (`TopicSpec`) fixes only what it states: `partitions=None` or
`retention=None` accept whatever the existing topic has (and create it with one partition
and the broker's default retention). Every backend compares a declaration with the
existing topic through `differences`, so they all name a conflict the same way.
"""

from __future__ import annotations

from datetime import timedelta

from tidings.exceptions import ConfigurationError
from tidings.records import TopicSpec

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def declared_spec(name: str, partitions: object, retention: object) -> TopicSpec:
    """Return the declaration of topic `name`, checking the types and ranges of its settings.

    Raises:
        ConfigurationError: partitions is not an int >= 1, or retention not a positive
            timedelta (a bare number is refused: its unit would be a guess).
    """
    if partitions is not None and (
        not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1
    ):
        raise ConfigurationError(
            f"Topic {name!r}: partitions must be an int >= 1 (got {partitions!r})."
        )
    if retention is not None:
        if not isinstance(retention, timedelta):
            raise ConfigurationError(
                f"Topic {name!r}: retention takes a datetime.timedelta, e.g. "
                f"retention=timedelta(days=7), not {type(retention).__name__} "
                f"{retention!r} (a bare number would leave the unit to guess)."
            )
        if retention <= timedelta(0):
            raise ConfigurationError(
                f"Topic {name!r}: retention must be positive (got {retention})."
            )
    return TopicSpec(name, partitions, retention)


def format_duration(seconds: float | None) -> str:
    """Render seconds with units (``7d``, ``1h30m``, ``0.5s``); None is ``unlimited``."""
    if seconds is None:
        return "unlimited"
    if seconds < 1 or seconds != int(seconds):
        return f"{seconds:g}s"
    total = int(seconds)
    parts = []
    for unit, size in _UNITS:
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def differences(
    spec: TopicSpec, partitions: int, retention: float | None
) -> list[tuple[str, str, str]]:
    """Return (setting, declared, existing) for each setting `spec` states differently."""
    out = []
    if spec.partitions is not None and spec.partitions != partitions:
        out.append(("partitions", str(spec.partitions), str(partitions)))
    if spec.retention is not None:
        declared = spec.retention.total_seconds()
        if retention is None or abs(declared - retention) > 0.001:
            out.append(("retention", format_duration(declared), format_duration(retention)))
    return out


def conflict_message(spec: TopicSpec, url: str, diffs: list[tuple[str, str, str]]) -> str:
    """Say how `spec` differs from the topic on `url` and how to resolve it."""
    declared = ", ".join(f"{name}={want}" for name, want, _ in diffs)
    existing = ", ".join(f"{name}={have}" for name, _, have in diffs)
    return (
        f"Topic {spec.name!r} is declared with {declared}, but the topic on {url} has "
        f"{existing}; tidings never changes an existing topic. See it with `tidings topics "
        f"describe {spec.name}`, then change the declaration app.topic({spec.name!r}, ...) "
        "to match, or change the topic (or declare a new topic name)."
    )


def check_declaration(spec: TopicSpec, url: str, partitions: int, retention: float | None) -> None:
    """Raise ConfigurationError if `spec` states a setting the existing topic does not have."""
    diffs = differences(spec, partitions, retention)
    if diffs:
        raise ConfigurationError(conflict_message(spec, url, diffs))
