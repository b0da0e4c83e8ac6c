"""tidings: event-driven systems on Apache Kafka, for Python.

The public API: `App`, `Event`, `Context`, `upcaster`, the consumer policies `Retry` and
`Batch`, and the exception tree (see `tidings.exceptions`). Test helpers live in `tidings.testing`.

The names are imported on first use (PEP 562), so `import tidings.cli` or
`import tidings.exceptions` does not pay for pydantic and the runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tidings.exceptions import (
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    ConsumerFailed,
    DecodeError,
    DeliveryUncertain,
    EncodeError,
    EventTooLarge,
    HandlerSignatureError,
    HandlerTimeout,
    PublishError,
    StorageError,
    StorageFull,
    TidingsError,
    TopicNotFound,
)

if TYPE_CHECKING:
    from tidings.app import App, Topic
    from tidings.context import Context
    from tidings.events import Event
    from tidings.publisher import Published
    from tidings.runtime.policies import Batch, Retry
    from tidings.upcasting import upcaster

__version__ = "0.1.0"

__all__ = [
    "App",
    "Batch",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigurationError",
    "ConsumerFailed",
    "Context",
    "DecodeError",
    "DeliveryUncertain",
    "EncodeError",
    "Event",
    "EventTooLarge",
    "HandlerSignatureError",
    "HandlerTimeout",
    "PublishError",
    "Published",
    "Retry",
    "StorageError",
    "StorageFull",
    "TidingsError",
    "Topic",
    "TopicNotFound",
    "__version__",
    "upcaster",
]

_LAZY = {
    "App": "tidings.app",
    "Topic": "tidings.app",
    "Context": "tidings.context",
    "Event": "tidings.events",
    "Published": "tidings.publisher",
    "Batch": "tidings.runtime.policies",
    "Retry": "tidings.runtime.policies",
    "upcaster": "tidings.upcasting",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tidings' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
