"""What a route needs from its group worker (the seam between Route and GroupWorker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tidings.records import OutgoingRecord, Record
from tidings.runtime.commit_tracker import CommitTracker, Run


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class RouteOwner(Protocol):
    """What a route needs from its group worker."""

    group: str
    tracker: CommitTracker

    def stop_partition(self, record: Record, reason: str) -> None: ...

    async def write_dead_letter(
        self,
        record: Record,
        reason: str,
        error: BaseException,
        attempts: int,
        drop_value: BaseException | None = None,
        *,
        run: Run | None = None,
    ) -> None: ...

    def fail(self, error: BaseException, where: str) -> None: ...

    async def write_retry(
        self, record: Record, attempt: int, delay: float, *, run: Run | None = None
    ) -> None: ...

    def stage(self, run: Run, index: int, outputs: list[OutgoingRecord]) -> None:
        """Hold a handled event's follow-ups for its offset commit (exactly_once)."""

    def context_publisher(self) -> Any: ...

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...

    async def sleep(self, delay: float) -> None: ...


def where(group: str, rec: Record) -> dict[str, object]:
    """The fields structured logs (``--log-format json``) carry for one record."""
    return {"group": group, "topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
