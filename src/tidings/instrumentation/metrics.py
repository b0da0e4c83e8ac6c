"""Prometheus metrics on the event catalogue (the optional extra ``tidings[metrics]``).

Names follow the OpenTelemetry messaging semantic conventions (v1.30.0), mapped to
Prometheus the standard way (dots to underscores, unit suffix, ``_total`` on counters),
plus tidings' own ``tidings_*`` series. Each app gets its own CollectorRegistry, never the
process-global one. This is the only module that imports prometheus_client.
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
from collections.abc import Iterator
from typing import Any

from tidings.exceptions import ConfigurationError
from tidings.instrumentation.catalogue import (
    BatchHandled,
    DeadLetterWritten,
    DelayScheduled,
    EventFailed,
    EventPublished,
    EventSkipped,
    RetryScheduled,
    WorkerStarted,
    WorkerView,
)
from tidings.instrumentation.dispatch import Listeners
from tidings.instrumentation.lag import Status

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "tidings metrics need prometheus-client: pip install 'tidings[metrics]'."
    ) from exc

SEMCONV_VERSION = "1.30.0"
GROUP, DEST, OUTCOME = "messaging_consumer_group_name", "messaging_destination_name", "outcome"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""The buckets the OTel messaging conventions recommend for durations."""
LAG_CACHE_SECONDS = 10.0
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The metrics of one app: counters fed by catalogue listeners, gauges read on scrape."""

    def __init__(self, listeners: Listeners) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # The two series fed per event are plain dictionaries, updated on the event loop
        # thread only and rendered on scrape: a prometheus_client child costs a lock and
        # more than the handler of a fast consumer. Handled events are not even listened
        # to: each consumer sums them in a Tally (building an EventHandled per event cost
        # a third of a fast consumer's CPU), merged in here on scrape.
        self.listeners = listeners
        self.consumed: dict[tuple[str, str, str], float] = {}
        self.process: dict[tuple[str, str, str], _Buckets] = {}
        self.sent = Counter(
            "messaging_client_sent_messages",
            "Events published by this process (stored durably).",
            [DEST],
            registry=r,
        )
        self.operation = Histogram(
            "messaging_client_operation_duration_seconds",
            "Duration of publish calls, until the broker stored the events.",
            ["messaging_operation_name", DEST],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "tidings_retries",
            "Retries scheduled (mode: in_place or retry_topic).",
            [GROUP, DEST, "mode"],
            registry=r,
        )
        self.dead_letters = Counter(
            "tidings_dead_letters",
            "Events written to a dead-letter topic, by reason.",
            [GROUP, DEST, "reason"],
            registry=r,
        )
        self._workers: dict[str, WorkerView] = {}
        self._delays: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        r.register(_Consumed(self))
        r.register(_Gauges(self))
        listeners.keep_tallies(DURATION_BUCKETS)
        on = listeners.on
        on(BatchHandled, self._batch)
        on(EventSkipped, self._skipped)
        on(EventFailed, self._failed)
        on(RetryScheduled, self._retry)
        on(DeadLetterWritten, self._dead_letter)
        on(EventPublished, self._published)
        on(DelayScheduled, self._delayed)
        on(WorkerStarted, self._started)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    # -- listeners -----------------------------------------------------------------------

    def _observe(self, key: tuple[str, str, str], duration: float) -> None:
        buckets = self.process.get(key)
        if buckets is None:
            buckets = self.process[key] = _Buckets()
        buckets.counts[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1
        buckets.sum += duration

    def _count(self, key: tuple[str, str, str], n: float = 1) -> None:
        consumed = self.consumed
        consumed[key] = consumed.get(key, 0) + n

    def _batch(self, e: BatchHandled) -> None:
        key = (e.group, e.topic, e.outcome)
        self._observe(key, e.duration)
        if e.outcome == "ack":
            self._count(key, e.size)

    def _skipped(self, e: EventSkipped) -> None:
        self._count((e.group, e.topic, "skip"))

    def _failed(self, e: EventFailed) -> None:
        if e.then == "stop":
            self._count((e.group, e.topic, "stop"))

    def _retry(self, e: RetryScheduled) -> None:
        self.retries.labels(e.group, e.topic, "in_place" if e.in_place else "retry_topic").inc()
        if not e.in_place:  # it leaves this topic: the retry topic consumes it again
            self._count((e.group, e.topic, "retry"))

    def _dead_letter(self, e: DeadLetterWritten) -> None:
        self.dead_letters.labels(e.group, e.topic, e.reason).inc()
        self._count((e.group, e.topic, "dead_letter"))

    def _published(self, e: EventPublished) -> None:
        self.sent.labels(e.topic).inc(e.count)
        self.operation.labels("send", e.topic).observe(e.duration)

    def _delayed(self, e: DelayScheduled) -> None:
        with self._lock:
            heapq.heappush(self._delays, (e.deliver_at, e.count))

    def _started(self, e: WorkerStarted) -> None:
        with self._lock:
            self._workers[e.group] = e.worker

    # -- read on scrape --------------------------------------------------------------------

    def workers(self) -> list[WorkerView]:
        with self._lock:
            return list(self._workers.values())

    def delayed_pending(self) -> int:
        """Delayed events this process published that are not due yet."""
        now = time.time()
        with self._lock:
            while self._delays and self._delays[0][0] <= now:
                heapq.heappop(self._delays)
            return sum(n for _, n in self._delays)


class _Buckets:
    """One histogram series: a count per bucket (the last is +Inf) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0


class _Consumed(Collector):
    """The per-event series, rendered from the listener's dictionaries on scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        consumed = CounterMetricFamily(
            "messaging_client_consumed_messages",
            "Events consumed, by how they ended (ack, skip, retry, dead_letter, stop).",
            labels=[GROUP, DEST, OUTCOME],
        )
        metrics = self.metrics
        counts = dict(metrics.consumed)
        series = {key: (list(b.counts), b.sum) for key, b in list(metrics.process.items())}
        for tally in metrics.listeners.tallies:
            for (topic, outcome), s in list(tally.series.items()):
                key = (tally.group, topic, outcome)
                seen = [int(n) for n in s[:-1]]
                if outcome == "ack":
                    counts[key] = counts.get(key, 0) + sum(seen)
                before = series.get(key)
                if before is not None:
                    seen = [a + b for a, b in zip(before[0], seen, strict=True)]
                series[key] = (seen, (before[1] if before else 0.0) + s[-1])
        for key, n in counts.items():
            consumed.add_metric(list(key), n)
        yield consumed
        process = HistogramMetricFamily(
            "messaging_process_duration_seconds",
            "Duration of handler calls (a batch handler's call counts once).",
            labels=[GROUP, DEST, OUTCOME],
        )
        for key, (bucket_counts, total) in series.items():
            running, cumulative = 0, []
            for bound, n in zip((*DURATION_BUCKETS, float("inf")), bucket_counts, strict=True):
                running += n
                cumulative.append(
                    ("+Inf" if bound == float("inf") else repr(float(bound)), float(running))
                )
            process.add_metric(list(key), cumulative, total)
        yield process


class _Gauges(Collector):
    """In-flight events, pending delays and lag, read from the workers when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        in_flight = GaugeMetricFamily(
            "tidings_in_flight_events",
            "Events fetched by this process and not yet finished, per group.",
            labels=[GROUP],
        )
        labels = ["group", "topic", "partition"]
        lag = GaugeMetricFamily(
            "tidings_consumer_lag_messages",
            "Events after the group's committed offset, per partition.",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "tidings_consumer_lag_seconds",
            "Age of the oldest event not handled yet (the one at the committed offset), "
            "per partition; 0 when caught up.",
            labels=labels,
        )
        status = GaugeMetricFamily(
            "tidings_consumer_group_status",
            "1 for the group's status (ok, lagging, stalled, stopped) judged over a window "
            "of samples, 0 for the others.",
            labels=["group", "status"],
        )
        for worker in self.metrics.workers():
            stats = worker.statistics()
            in_flight.add_metric([worker.group], float(stats.get("in_flight", 0)))  # type: ignore[arg-type]
            report = worker.lag_report
            if report is None:  # no sample yet (or status reports off): ask the broker
                for (topic, partition), n in worker.lag_messages(LAG_CACHE_SECONDS).items():
                    lag.add_metric([worker.group, topic, str(partition)], float(n))
                continue
            for p in report.partitions:
                where = [worker.group, p.topic, str(p.partition)]
                lag.add_metric(where, float(p.lag))
                if p.lag_seconds is not None:
                    age.add_metric(where, p.lag_seconds)
            for s in Status:
                status.add_metric([worker.group, s.value], float(s is report.status))
        yield in_flight
        yield lag
        yield age
        yield status
        yield GaugeMetricFamily(
            "tidings_delayed_pending",
            "Delayed events published by this process that are not due yet.",
            value=float(self.metrics.delayed_pending()),
        )


def install(listeners: Listeners) -> Metrics:
    """Create the metrics of an app (pass ``app.listeners``) and start listening."""
    return Metrics(listeners)
