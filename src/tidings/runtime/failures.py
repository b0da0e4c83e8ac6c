"""Failure strategies: what a consumer does with an event that failed, chosen at registration.

A `FailureStrategy` is built once per `@app.consumer` (from its `Retry` and `dead_letter`
settings) and composes two steps:

- how a failed attempt is tried again: `RetryInPlace` (the event waits out its backoff
  parked, holding back only later events of its partition or key) or `RetryTopic` (it moves
  to ``<topic>.<group>.retry`` and its offset commits; in place if that write fails);
- how an event ends once retries are spent or it cannot be decoded: `DeadLetter` (written to
  ``<topic>.<group>.dlq``, then committed; the write is retried until it succeeds) or `Stop`
  (its partition stops there, nothing after it is committed).

`judge` turns a handler's exception into an Outcome; `Route.settle` acts on it through these
steps. Batch consumers retry their batch in place whatever the strategy (batching.py).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING, Protocol

from tidings.runtime.dead_letters import must_drop_value
from tidings.runtime.delivery import Delivery
from tidings.runtime.outcome import Outcome
from tidings.runtime.owner import where
from tidings.runtime.policies import Retry

if TYPE_CHECKING:
    from tidings.runtime.route import Route

log = logging.getLogger("tidings.consumer")

DLQ_RETRY_SECONDS = 5.0
"""Wait before writing a dead letter again after the write failed."""


class RetryStep(Protocol):
    in_place: bool

    async def retry(self, route: Route, lane: Hashable | None, d: Delivery, delay: float) -> None:
        """Have `d` tried again (attempt ``d.attempt + 1``) after `delay` seconds."""


class FinalStep(Protocol):
    outcome: Outcome

    async def end(
        self, route: Route, lane: Hashable | None, d: Delivery, exc: BaseException, reason: str
    ) -> None:
        """End `d` for good: it failed with `exc` (`reason`, e.g. handler_error, bad_json)."""


class RetryInPlace:
    """Park the event for its backoff; its lane stays busy, other lanes flow."""

    in_place = True

    async def retry(self, route: Route, lane: Hashable | None, d: Delivery, delay: float) -> None:
        d.attempt += 1
        if route.signals.active:
            route.signals.retry_scheduled(d, d.attempt, delay, in_place=True)
        route.park(lane, d, delay)


class RetryTopic:
    """Move the event to the group's retry topic and commit it (per-key order is traded)."""

    in_place = False

    async def retry(self, route: Route, lane: Hashable | None, d: Delivery, delay: float) -> None:
        try:
            await route.owner.write_retry(d.record, d.attempt + 1, delay, run=d.run)
        except Exception as write_error:
            log.error("Could not write to the retry topic (%r); retrying in place.", write_error)
            await RETRY_IN_PLACE.retry(route, lane, d, delay)
            return
        if route.signals.active:
            route.signals.retry_scheduled(d, d.attempt + 1, delay, in_place=False)
        route.done(lane, d)


class DeadLetter:
    """Write the event to the group's dead-letter topic, then let its offset commit."""

    outcome = Outcome.DEAD_LETTER

    async def end(
        self, route: Route, lane: Hashable | None, d: Delivery, exc: BaseException, reason: str
    ) -> None:
        rec = d.record
        try:
            await route.owner.write_dead_letter(rec, reason, exc, d.attempt, d.dlq_error, run=d.run)
        except Exception as write_error:
            d.dlq_failures += 1
            delay = DLQ_RETRY_SECONDS
            if d.dlq_error is None and must_drop_value(write_error, d.dlq_failures):
                d.dlq_error, delay = write_error, 0.0
            log.error(
                "Could not write %s[%d]@%d to the dead-letter topic (%s); %s. The offset is "
                "not committed meanwhile.",
                rec.topic,
                rec.partition,
                rec.offset,
                write_error,
                "retrying in 5 s"
                if delay
                else "writing it again without its value (the original stays in its topic)",
            )
            route.park(lane, d, delay, again=lambda: self.end(route, lane, d, exc, reason))
            return
        route.stats.dead_lettered += 1
        if route.signals.active:
            route.signals.dead_letter_written(d, reason)
        route.done(lane, d)
        route.wake()  # from a parked retry of the write, no worker may be awake


class Stop:
    """Stop the event's partition (dead letters off): nothing after it is committed."""

    outcome = Outcome.STOP

    async def end(
        self, route: Route, lane: Hashable | None, d: Delivery, exc: BaseException, reason: str
    ) -> None:
        route.stats.stopped_partitions += 1
        route.owner.stop_partition(d.record, f"{reason}: {exc}")
        # The lane stays busy: nothing after this event of its lane runs.


RETRY_IN_PLACE = RetryInPlace()


class FailureStrategy:
    """How one consumer's failures end (see the module docstring); chosen at registration."""

    __slots__ = ("final", "policy", "retrying")

    def __init__(self, policy: Retry, *, dead_letter: bool) -> None:
        self.policy = policy
        self.retrying: RetryStep = RETRY_IN_PLACE if policy.keep_order else RetryTopic()
        self.final: FinalStep = DeadLetter() if dead_letter else Stop()

    @property
    def gives_up_with(self) -> Outcome:
        """The outcome of an event that fails for good: DEAD_LETTER or STOP."""
        return self.final.outcome

    def judge(self, exc: BaseException, attempt: int) -> Outcome:
        """Return RETRY if the policy grants `exc` on `attempt` another try, else the end."""
        if self.policy.should_retry(exc, attempt):
            return Outcome.RETRY
        return self.final.outcome

    def log_retry(self, route: Route, d: Delivery, exc: BaseException, delay: float) -> None:
        rec = d.record
        log.warning(
            "%s failed on %s[%d]@%d (attempt %d of %d): %r; retrying in %.2fs",
            route.spec.handler.name,
            rec.topic,
            rec.partition,
            rec.offset,
            d.attempt,
            self.policy.attempts,
            exc,
            delay,
            extra=where(route.owner.group, rec),
        )
