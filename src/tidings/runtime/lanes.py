"""Key-ordered scheduling: never two events of one key at once, always in fetch order."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lanes(Generic[T]):
    """A ready queue plus one waiting line per busy key.

    `submit` makes an item ready unless its lane is busy (an earlier item of the lane is
    ready, running or parked for a retry), in which case it waits behind it. `finish`
    releases the lane's next item. Items without a lane (None) are never held back.
    """

    def __init__(self) -> None:
        self.ready: deque[tuple[Hashable | None, T]] = deque()
        self.busy: dict[Hashable, deque[T]] = {}

    def submit(self, lane: Hashable | None, item: T) -> None:
        if lane is None:
            self.ready.append((None, item))
            return
        waiting = self.busy.get(lane)
        if waiting is None:
            self.busy[lane] = deque()
            self.ready.append((lane, item))
        else:
            waiting.append(item)

    def finish(self, lane: Hashable | None) -> None:
        """The lane's current item is done; make its next one ready."""
        if lane is None:
            return
        waiting = self.busy.get(lane)
        if waiting is None:
            return
        if waiting:
            self.ready.append((lane, waiting.popleft()))
        else:
            del self.busy[lane]

    def requeue(self, lane: Hashable | None, item: T) -> None:
        """Make a parked item ready again (its lane stays busy meanwhile)."""
        self.ready.appendleft((lane, item))
