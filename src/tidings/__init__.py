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
    from tidings.instrumentation.catalogue import (
        BatchHandled,
        ConsumerPaused,
        ConsumerResumed,
        DeadLetterWritten,
        DelayReleased,
        DelayScheduled,
        EventFailed,
        EventHandled,
        EventPublished,
        EventReceived,
        EventSkipped,
        OffsetsCommitted,
        PartitionsAssigned,
        PartitionsRevoked,
        RetryScheduled,
        RuntimeEvent,
        WorkerRestarted,
        WorkerStarted,
        WorkerStopping,
    )
    from tidings.publisher import Published
    from tidings.runtime.policies import Batch, Retry
    from tidings.upcasting import upcaster

__version__ = "0.1.0"

__all__ = [
    "App",
    "Batch",
    "BatchHandled",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigurationError",
    "ConsumerFailed",
    "ConsumerPaused",
    "ConsumerResumed",
    "Context",
    "DeadLetterWritten",
    "DecodeError",
    "DelayReleased",
    "DelayScheduled",
    "DeliveryUncertain",
    "EncodeError",
    "Event",
    "EventFailed",
    "EventHandled",
    "EventPublished",
    "EventReceived",
    "EventSkipped",
    "EventTooLarge",
    "HandlerSignatureError",
    "HandlerTimeout",
    "OffsetsCommitted",
    "PartitionsAssigned",
    "PartitionsRevoked",
    "PublishError",
    "Published",
    "Retry",
    "RetryScheduled",
    "RuntimeEvent",
    "StorageError",
    "StorageFull",
    "TidingsError",
    "Topic",
    "TopicNotFound",
    "WorkerRestarted",
    "WorkerStarted",
    "WorkerStopping",
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
    "BatchHandled": "tidings.instrumentation.catalogue",
    "ConsumerPaused": "tidings.instrumentation.catalogue",
    "ConsumerResumed": "tidings.instrumentation.catalogue",
    "DeadLetterWritten": "tidings.instrumentation.catalogue",
    "DelayReleased": "tidings.instrumentation.catalogue",
    "DelayScheduled": "tidings.instrumentation.catalogue",
    "EventFailed": "tidings.instrumentation.catalogue",
    "EventHandled": "tidings.instrumentation.catalogue",
    "EventPublished": "tidings.instrumentation.catalogue",
    "EventReceived": "tidings.instrumentation.catalogue",
    "EventSkipped": "tidings.instrumentation.catalogue",
    "OffsetsCommitted": "tidings.instrumentation.catalogue",
    "PartitionsAssigned": "tidings.instrumentation.catalogue",
    "PartitionsRevoked": "tidings.instrumentation.catalogue",
    "RetryScheduled": "tidings.instrumentation.catalogue",
    "RuntimeEvent": "tidings.instrumentation.catalogue",
    "WorkerRestarted": "tidings.instrumentation.catalogue",
    "WorkerStarted": "tidings.instrumentation.catalogue",
    "WorkerStopping": "tidings.instrumentation.catalogue",
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
