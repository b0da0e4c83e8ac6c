"""The embedded broker: SQLite in WAL mode in a data directory (the zero-setup default).

Modules, one concept each: `schema` (the tables), `store` (the file, pragmas,
transactions), `log` (topics, append, read, retention), `codec` (stored headers), `delays`
(delayed delivery), `groups` (membership, heartbeats, ownership, offsets), `consumer` (the
group member), `admin` (topic and group views, reset) and `backend` (the `Backend` tying
them together).
"""

from tidings.backends.embedded.backend import EmbeddedBackend

__all__ = ["EmbeddedBackend"]
