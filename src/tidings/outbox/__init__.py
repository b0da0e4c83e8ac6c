"""Transactional outbox, relay and idempotent inbox on SQLAlchemy (PostgreSQL and SQLite).

The only part of tidings that imports SQLAlchemy and the database drivers; install it with
``pip install 'tidings[outbox]'``. Users reach it through `App.outbox` and `App.inbox`.
"""

import contextlib
from collections.abc import Iterator, Sequence

from tidings.outbox.inbox import Inbox
from tidings.outbox.outbox import Outbox, OutboxStats
from tidings.outbox.relay import Relay

__all__ = ["Inbox", "Outbox", "OutboxStats", "Relay", "edges_running"]


@contextlib.contextmanager
def edges_running(outboxes: Sequence[Outbox], inboxes: Sequence[Inbox]) -> Iterator[None]:
    """Run a relay per outbox and a cleaner per inbox in background threads while inside."""
    with contextlib.ExitStack() as stack:
        for outbox in outboxes:
            stack.enter_context(Relay(outbox).running())
        for inbox in inboxes:
            stack.enter_context(inbox.running())
        yield
