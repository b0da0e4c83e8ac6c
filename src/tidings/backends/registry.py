"""Resolve a broker URL to a backend, importing the implementation lazily."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tidings.backends.base import Backend
from tidings.exceptions import ConfigurationError

DEFAULT_DIR = ".tidings"
SCHEMES = ("embedded", "kafka", "memory")


def resolve_url(broker: str | None) -> str:
    """Return the broker URL: the argument, else $TIDINGS_BROKER, else the embedded default."""
    url = broker or os.environ.get("TIDINGS_BROKER") or ""
    if not url:
        return f"embedded://{DEFAULT_DIR}"
    return url


def open_backend(
    broker: str | None, options: Mapping[str, Any] | None = None, *, read_only: bool = False
) -> Backend:
    """Open the backend for `broker` (see `resolve_url`).

    With `read_only`, an embedded store is opened for reading only (it must exist; nothing
    is created or written); other backends ignore it.

    URLs: ``embedded://PATH`` (a data directory; relative paths are relative to the working
    directory), ``kafka://host:port[,host:port]``, ``memory://NAME`` (in-process, for tests).

    Raises:
        ConfigurationError: the scheme is unknown or the URL is malformed.
    """
    url = resolve_url(broker)
    opts = dict(options or {})
    scheme, sep, rest = url.partition("://")
    if not sep:
        if "/" in url or url.startswith("."):
            scheme, rest = "embedded", url
        else:
            raise ConfigurationError(
                f"Broker URL {url!r} has no scheme. Use kafka://host:port, embedded://PATH "
                "or memory://NAME."
            )
    scheme = scheme.lower()
    if scheme == "embedded":
        from tidings.backends.embedded import EmbeddedBackend

        if read_only:
            opts["read_only"] = True
        return EmbeddedBackend(Path(rest or DEFAULT_DIR), url=url, **opts)
    if scheme == "kafka":
        servers = urlsplit(url).netloc or rest
        if not servers:
            raise ConfigurationError(
                f"Broker URL {url!r} names no server. Use kafka://host:port[,host:port]."
            )
        try:
            from tidings.backends.kafka import KafkaBackend
        except ImportError as exc:  # pragma: no cover - confluent-kafka is a dependency
            raise ConfigurationError(
                f"The Kafka backend needs confluent-kafka ({exc}). Run: pip install confluent-kafka"
            ) from exc
        return KafkaBackend(servers, url=url, **opts)
    if scheme == "memory":
        from tidings.backends.memory import MemoryBackend

        return MemoryBackend.named(rest or "default")
    hint = difflib.get_close_matches(scheme, SCHEMES, n=1)
    did_you_mean = f" Did you mean {hint[0]}://?" if hint else ""
    raise ConfigurationError(
        f"Unknown broker URL scheme {scheme!r} in {url!r}.{did_you_mean} "
        f"Supported: {', '.join(s + '://' for s in SCHEMES)}."
    )
