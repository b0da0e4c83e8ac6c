"""FastStream's confluent-kafka-based broker (`faststream.confluent`)."""

from __future__ import annotations

from typing import Any

from benchmarks.contenders import faststream_peer


def __getattr__(name: str) -> Any:
    """Every scenario is faststream_peer's, run with this broker flavor."""
    return faststream_peer.scenario(name, "confluent")
