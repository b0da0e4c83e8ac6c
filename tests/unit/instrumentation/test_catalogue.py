"""The event catalogue: every event type is emitted by a run, from the place it names."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from tests.helpers import wait_until
from tidings import App, Batch, Event, Retry, RuntimeEvent, WorkerRestarted
from tidings.instrumentation.catalogue import CATALOGUE, EMITTED_BY


class CatalogueGood(Event):
    n: int


class CatalogueOther(Event):
    n: int


def test_every_catalogue_event_is_emitted_in_a_run(topic_name: str) -> None:
    app = App("catalogue", broker=f"memory://{uuid.uuid4().hex}", max_in_flight=1)
    main = app.topic(topic_name)
    moved = app.topic(topic_name + "-moved")
    seen: list[RuntimeEvent] = []
    lock = threading.Lock()

    def record(event: RuntimeEvent) -> None:
        with lock:
            seen.append(event)

    app.on(RuntimeEvent, record)
    handled: list[int] = []
    batched: list[int] = []

    @app.consumer(main, group="single", retry=Retry(attempts=2, backoff=0.01))
    async def single(e: CatalogueGood) -> None:
        if e.n == 1:
            raise ValueError("poison")
        handled.append(e.n)

    @app.consumer(moved, group="mover", retry=Retry(attempts=2, backoff=0.01, keep_order=False))
    async def mover(e: CatalogueGood) -> None:
        if e.n == 1 and not any(x == -1 for x in handled):
            handled.append(-1)
            raise ValueError("once")
        handled.append(100 + e.n)

    @app.consumer(main, group="batch", batch=Batch(max_size=5, max_wait=0.05))
    def batch(events: list[CatalogueGood]) -> None:
        batched.extend(e.n for e in events)

    app.publish_many(main, [CatalogueGood(n=i) for i in range(6)] + [CatalogueOther(n=9)])
    app.publish(main, CatalogueGood(n=7), delay=timedelta(milliseconds=50))
    app.publish(moved, CatalogueGood(n=1))
    with app.running():
        wait_until(
            lambda: {0, 2, 3, 4, 5, 7, 101} <= set(handled) and len(batched) == 7,
            30,
            "every event handled",
        )
        wait_until(lambda: any(e.name == "dead_letter.written" for e in seen), 10, "dead letter")
    names = Counter(e.name for e in seen)
    # WorkerRestarted comes from the `tidings run --workers` supervisor: tests/workers/.
    missing = [k.__name__ for k in CATALOGUE if k.name not in names and k is not WorkerRestarted]
    assert not missing, f"never emitted: {missing} (seen {dict(names)})"
    assert set(EMITTED_BY) == set(CATALOGUE)
    assert names["dead_letter.written"] == 1
    app.close()


def test_each_event_is_built_in_exactly_the_one_function_named() -> None:
    import importlib
    import inspect
    import re
    from pathlib import Path

    import tidings

    sources = [
        p.read_text()
        for p in Path(tidings.__file__).parent.rglob("*.py")
        if p.name != "catalogue.py"
    ]
    for kind, where in EMITTED_BY.items():
        built = re.compile(rf"\b{kind.__name__}\(")
        assert sum(len(built.findall(text)) for text in sources) == 1, kind.__name__
        parts = where.split(".")
        target: object = None
        for cut in range(len(parts) - 1, 0, -1):
            try:
                target = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                target = getattr(target, attr)
            break
        source = inspect.getsource(target)  # type: ignore[arg-type]
        assert built.search(source), f"{kind.__name__} is not built in {where}"


def test_a_raising_listener_is_logged_once_and_consumption_goes_on(
    topic_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tidings import EventHandled

    app = App("catalogue", broker=f"memory://{uuid.uuid4().hex}")
    topic = app.topic(topic_name)
    got: list[int] = []

    def broken(event: EventHandled) -> None:
        raise RuntimeError("listener bug")

    app.on(EventHandled, broken)

    @app.consumer(topic, group="g")
    async def handler(e: CatalogueGood) -> None:
        got.append(e.n)

    app.publish_many(topic, [CatalogueGood(n=i) for i in range(50)])
    with caplog.at_level(logging.WARNING, "tidings.instrumentation"), app.running():
        wait_until(lambda: len(got) == 50, 30, "50 handled")
    assert got == list(range(50))
    warnings = [r for r in caplog.records if "listener bug" in r.getMessage()]
    assert len(warnings) == 1
    app.close()


def test_on_refuses_what_is_not_in_the_catalogue() -> None:
    from tidings import ConfigurationError

    app = App("catalogue", broker=f"memory://{uuid.uuid4().hex}")
    with pytest.raises(ConfigurationError, match="catalogue"):
        app.on(CatalogueGood, print)  # type: ignore[type-var]
