"""Validate a topic's replication settings where they are declared (``app.topic(...)``)."""

from __future__ import annotations

from collections.abc import Mapping

from tidings.exceptions import ConfigurationError

MIN_INSYNC = "min.insync.replicas"


def topic_config(
    topic: str, replication: int | None, config: Mapping[str, str | int] | None
) -> tuple[tuple[str, str], ...]:
    """Check `replication` and `config` of `topic`; return the config as sorted text pairs.

    Raises:
        ConfigurationError: replication below 1, a config that is not a dict of property
            names, or ``min.insync.replicas`` above the replication (no write could succeed).
    """
    if replication is not None and (
        isinstance(replication, bool) or not isinstance(replication, int) or replication < 1
    ):
        raise ConfigurationError(
            f"Topic {topic!r}: replication must be a whole number >= 1 (got {replication!r})."
        )
    if config is None:
        return ()
    if not isinstance(config, Mapping) or not all(isinstance(k, str) and k for k in config):
        raise ConfigurationError(
            f"Topic {topic!r}: config must be a dict of Kafka topic properties, e.g. "
            f"{{'min.insync.replicas': '2'}}; got {config!r}."
        )
    pairs = tuple(sorted((k, str(v)) for k, v in config.items()))
    min_isr = dict(pairs).get(MIN_INSYNC)
    if min_isr is not None:
        if not min_isr.isdigit() or int(min_isr) < 1:
            raise ConfigurationError(
                f"Topic {topic!r}: {MIN_INSYNC} must be a whole number >= 1 (got {min_isr!r})."
            )
        if replication is not None and int(min_isr) > replication:
            raise ConfigurationError(
                f"Topic {topic!r}: {MIN_INSYNC}={min_isr} is above replication={replication}, "
                "so no write could ever be acknowledged; use at most the replication "
                "(replication=3 with min.insync.replicas=2 survives one broker down)."
            )
    return pairs
