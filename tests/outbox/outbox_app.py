"""An app for the outbox process tests: `tidings relay`/`tidings run` load it, and
`python -m tests.outbox.outbox_app write N` commits outbox transactions.

Environment: TIDINGS_BROKER, TOPIC, OUTBOX_DATABASE_URL; CONSUME=1 declares the payments
consumer (inbox + ledger), DELIVERIES (a file each delivery is appended to, before the
claim) and HANDLER_SLEEP (seconds per event).
"""

from __future__ import annotations

import os
import random
import sys
import time

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, insert, select
from sqlalchemy.orm import Session

from tidings import App, Context, Event


class Booked(Event):
    key: str
    seq: int


TABLES = MetaData()
COMMITTED = Table("committed", TABLES, Column("seq", Integer, primary_key=True))
LEDGER = Table(  # no unique constraint: a doubled payment would show as two rows
    "ledger", TABLES, Column("seq", Integer), Column("event_id", String(64)), Column("pid", Integer)
)
KEYS = [f"k{i}" for i in range(20)]

app = App("outbox-proc", grace=5.0)
topic = app.topic(os.environ.get("TOPIC", "outbox-proc"), partitions=3)
engine = create_engine(os.environ.get("OUTBOX_DATABASE_URL", "sqlite:///outbox-proc.db"))
outbox = app.outbox(engine, poll=0.1)
inbox = app.inbox(engine)

if os.environ.get("CONSUME") == "1":
    deliveries = os.open(os.environ["DELIVERIES"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    pause = float(os.environ.get("HANDLER_SLEEP", "0"))

    @app.consumer(topic, group="payments")
    def pay(event: Booked, ctx: Context) -> None:
        os.write(deliveries, f"{event.seq}\n".encode())
        with Session(engine) as s, s.begin():
            if not inbox.claim(s, ctx):
                return
            s.execute(insert(LEDGER).values(seq=event.seq, event_id=ctx.event_id, pid=os.getpid()))
            if pause:
                time.sleep(pause)


def rolled_back(seq: int) -> bool:
    """The transactions the writer rolls back (after publishing), chosen by seq."""
    return seq % 7 == 3


def write(total: int) -> None:
    """Commit one outbox transaction per seq from where the last run stopped up to `total`;
    each notes its seq in `committed` in the same transaction."""
    with Session(engine) as s:
        start = (s.execute(select(func.max(COMMITTED.c.seq))).scalar() or 0) + 1
    rng = random.Random(start)
    for seq in range(start, total + 1):
        key = KEYS[seq % len(KEYS)]
        try:
            with Session(engine) as s, s.begin():
                outbox.publish(s, topic, Booked(key=key, seq=seq), key=key)
                s.execute(insert(COMMITTED).values(seq=seq))
                if rolled_back(seq):
                    raise LookupError("rolled back on purpose")
        except LookupError:
            pass
        if rng.random() < 0.01:
            time.sleep(0.01)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(int(sys.argv[2]))
