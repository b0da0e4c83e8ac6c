"""The one exception tree of tidings.

Every message names the problem and how to fix it::

    TidingsError
    ├── ConfigurationError        bad App/consumer/topic declaration, bad broker URL or option
    │   └── HandlerSignatureError a handler whose annotation is not an Event type
    ├── AppLoadError              `tidings run module:attr` could not load the app
    ├── BrokerError               the broker failed or could not be reached
    │   ├── BrokerUnavailable     nothing answered at the address within the bound
    │   ├── TransactionAborted    an exactly-once commit was rolled back (nothing of it is visible)
    │   └── StorageError          the embedded store cannot write (read-only, disk full)
    │       └── StorageFull
    ├── PublishError              an event was not (or may not have been) stored
    │   ├── EventTooLarge         refused before it reached the broker
    │   ├── EncodeError           the event could not be encoded as JSON (never sent)
    │   ├── TopicNotFound         the topic does not exist and the app did not declare it
    │   └── DeliveryUncertain     the broker may have stored it ("possibly persisted")
    ├── DecodeError               a record is not a valid tidings event (goes to the dead letters)
    │   ├── UnknownEventType
    │   └── UnsupportedContentType
    ├── HandlerTimeout            a handler ran past its consumer's `timeout`
    └── ConsumerFailed            the consumer runtime stopped on an unexpected error
"""

from __future__ import annotations


class TidingsError(Exception):
    """Base class of every error tidings raises on purpose."""


class ConfigurationError(TidingsError, ValueError):
    """A declaration or setting is invalid; raised where it is declared."""


class HandlerSignatureError(ConfigurationError, TypeError):
    """A consumer handler's signature cannot be dispatched to."""


class AppLoadError(TidingsError):
    """`module:attribute` did not resolve to a tidings App."""


class BrokerError(TidingsError):
    """The broker failed an operation."""


class BrokerUnavailable(BrokerError):
    """No broker answered at the configured address within the time bound."""


class TransactionAborted(BrokerError):
    """An exactly-once transaction (outputs and offsets) was aborted: none of it is visible.

    The member was fenced (another instance took its place, or the group moved on), or the
    broker refused part of it. The runtime rewinds to the last committed offsets and handles
    those events again; it never needs fixing by hand.
    """


class StorageError(BrokerError):
    """The embedded store could not be opened or written."""


class StorageFull(StorageError):
    """The embedded store's disk (or page limit) is full."""


class PublishError(TidingsError):
    """An event was not stored by the broker."""


class EventTooLarge(PublishError):
    """An event is larger than the configured limit; it never reached the broker."""


class EncodeError(PublishError):
    """An event could not be encoded as JSON (e.g. nested too deeply); it was never sent."""


class TopicNotFound(PublishError):
    """A record is for a topic that does not exist; tidings creates only declared topics."""

    def __init__(self, topic: str, url: str) -> None:
        super().__init__(
            f"Topic {topic!r} does not exist on {url}, and tidings creates only declared "
            f"topics. Check the name with `tidings topics list`; declare the topic with "
            f"app.topic({topic!r}, partitions=N) (created when the app first uses the "
            f"broker), or create it with `tidings topics create {topic}`."
        )
        self.topic = topic


class DeliveryUncertain(PublishError):
    """The broker may or may not have stored the event (a timeout after sending)."""


class DecodeError(TidingsError):
    """A record could not be decoded into an Event; `reason` is a short machine code."""

    def __init__(self, message: str, *, reason: str = "decode_error") -> None:
        super().__init__(message)
        self.reason = reason


class UnknownEventType(DecodeError):
    """A record's `ce_type` names no registered Event class."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="unknown_type")


class UnsupportedContentType(DecodeError):
    """A record's content type is not JSON; tidings never runs other decoders (no pickle)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="unsupported_content_type")


class HandlerTimeout(TidingsError):
    """A handler ran longer than its consumer's `timeout`."""


class ConsumerFailed(TidingsError):
    """A group's consumer stopped on an error the runtime did not expect; the app stops.

    Raised by `App.run` (and `tidings run` exits 1) rather than leaving a dead worker and a
    stalled group behind; events not committed are redelivered when the app runs again.
    """
