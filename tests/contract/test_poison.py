"""Poison input on every backend: exactly the bad events reach the dead letters, and a
replay re-delivers them to the one group that failed them."""

from __future__ import annotations

import threading
from collections import defaultdict

from typer.testing import CliRunner

from tests.helpers import wait_until
from tidings import App, Context, Event, Retry
from tidings.cli import app as cli
from tidings.records import OutgoingRecord


class Order(Event):
    n: int
    kind: str  # "good", "flaky" (fails once) or "poison" (always fails)


def lag(app: App, group: str, topic: str) -> int:
    for g in app.backend.groups():
        if g.group == group:
            return sum(p.lag for p in g.partitions if p.topic == topic)
    return -1


def read_all(app: App, topic: str, expect: int) -> list:
    reader = app.backend.open_consumer(None, [topic], start="earliest", listener=None)
    records: list = []
    for _ in range(200):
        records += reader.fetch(500, 0.1)
        if len(records) >= expect:
            break
    reader.close()
    return records


def test_dead_letters_hold_exactly_the_poison_and_replay_reaches_one_group(
    broker_url: str, topic_name: str
) -> None:
    app = App("poison", broker=broker_url)
    topic = app.topic(topic_name, partitions=3)
    fulfilment, ledger = f"fulfilment-{topic_name}", f"ledger-{topic_name}"
    seen: dict[str, list[tuple[int, int]]] = defaultdict(list)
    healed = threading.Event()
    lock = threading.Lock()

    @app.consumer(topic, group=fulfilment, retry=Retry(attempts=3, backoff=0.01))
    def fulfil(e: Order, ctx: Context) -> None:
        with lock:
            seen["fulfilment"].append((e.n, ctx.attempt))
        if e.kind == "flaky" and ctx.attempt == 1:
            raise TimeoutError("warehouse API timed out")
        if e.kind == "poison" and not healed.is_set():
            raise KeyError(f"sku of order {e.n} is unknown")

    @app.consumer(topic, group=ledger)
    def book(e: Order) -> None:
        with lock:
            seen["ledger"].append((e.n, 1))

    kinds = ["good", "flaky", "good", "poison", "good"]
    orders = [Order(n=i, kind=kinds[i % 5]) for i in range(50)]
    app.publish_many(topic, [(str(o.n), o) for o in orders])
    malformed = [
        OutgoingRecord(topic_name, b"m1", b"{not json", (("ce_type", b"Order"),)),
        OutgoingRecord(topic_name, b"m2", b'{"n": "x"}', (("ce_type", b"Order"),)),
        OutgoingRecord(topic_name, b"m3", b"\x80\x81", (("ce_type", b"Order"),)),
        OutgoingRecord(topic_name, b"m4", b"{}", (("content-type", b"application/x-pickle"),)),
    ]
    app.backend.produce(malformed)

    with app.running():
        wait_until(
            lambda: lag(app, fulfilment, topic_name) == 0 and lag(app, ledger, topic_name) == 0,
            60,
            "drain",
        )
    poison = {o.n for o in orders if o.kind == "poison"}
    letters = read_all(app, f"{topic_name}.{fulfilment}.dlq", len(poison) + 4)
    handler_errors = [
        r for r in letters if dict(r.headers)["tidings-dlq-reason"] == b"handler_error"
    ]
    assert {Order.model_validate_json(r.value).n for r in handler_errors} == poison
    bad = sorted(r.key for r in letters if r not in handler_errors)
    assert bad == [b"m1", b"m2", b"m3", b"m4"]
    for r in handler_errors:
        h = dict(r.headers)
        assert h["tidings-dlq-error-type"] == b"KeyError"
        assert h["tidings-dlq-attempts"] == b"3"
        assert h["tidings-dlq-original-topic"] == topic_name.encode()
        assert int(h["tidings-dlq-original-offset"]) >= 0
    flaky = {o.n for o in orders if o.kind == "flaky"}
    assert {n for n, a in seen["fulfilment"] if a == 2} >= flaky
    assert sorted(n for n, _ in seen["ledger"]) == list(range(50))  # ledger never fails

    # The bug is fixed; replay into fulfilment only. The ledger group must see nothing new.
    healed.set()
    before = len(seen["ledger"])
    fulfilled_before = len(seen["fulfilment"])
    result = CliRunner().invoke(
        cli, ["dlq", "replay", "--group", fulfilment, "--broker", broker_url]
    )
    assert result.exit_code == 0, result.output
    assert f"Replayed {len(poison) + 4}" in result.output
    with app.running():
        wait_until(
            lambda: lag(app, fulfilment, topic_name) == 0 and lag(app, ledger, topic_name) == 0,
            60,
            "replay",
        )
    replayed = [n for n, _ in seen["fulfilment"][fulfilled_before:]]
    assert sorted(replayed) == sorted(poison)
    assert len(seen["ledger"]) == before
    app.close()
