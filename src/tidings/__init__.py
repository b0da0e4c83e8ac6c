"""tidings: event-driven systems on Apache Kafka, for Python.

The public API: `App`, `Event`, `Context`, the consumer policies `Retry` and `Batch`, and
the exception tree (see `tidings.exceptions`). Test helpers live in `tidings.testing`.
"""

from tidings.app import App, Topic
from tidings.context import Context
from tidings.events import Event
from tidings.exceptions import (
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    ConsumerFailed,
    DecodeError,
    DeliveryUncertain,
    EventTooLarge,
    HandlerSignatureError,
    HandlerTimeout,
    PublishError,
    StorageError,
    StorageFull,
    TidingsError,
)
from tidings.publisher import Published
from tidings.runtime.policies import Batch, Retry

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
    "__version__",
]
