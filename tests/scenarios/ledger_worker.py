"""A worker process for crash tests: handles Tick events and writes a ledger line per delivery.

Environment: TIDINGS_BROKER (broker URL), LEDGER_DIR, TOPIC, GROUPS (comma-separated),
HANDLER_SLEEP (seconds per event, default 0). The ledger line is written (unbuffered)
before the handler returns, so every committed event is in some ledger.
"""

from __future__ import annotations

import os
import time

from tidings import App, Context, Event


class Tick(Event):
    key: str
    seq: int


def build() -> App:
    app = App("ledger", grace=5.0, max_in_flight=int(os.environ.get("MAX_IN_FLIGHT", "10000")))
    topic = app.topic(os.environ["TOPIC"], partitions=3)
    ledger = os.open(
        os.path.join(os.environ["LEDGER_DIR"], f"ledger-{os.getpid()}.log"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    )
    pause = float(os.environ.get("HANDLER_SLEEP", "0"))

    def make(group: str) -> None:
        @app.consumer(topic, group=group)
        def handle(e: Tick, ctx: Context) -> None:
            if pause:
                time.sleep(pause)
            line = f"{group} {e.key} {e.seq} {time.time_ns()} {ctx.partition} {ctx.offset}\n"
            os.write(ledger, line.encode())

    for group in os.environ["GROUPS"].split(","):
        make(group)
    return app


if __name__ == "__main__":
    build().run()
