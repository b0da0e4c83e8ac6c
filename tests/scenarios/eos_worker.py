"""A consume-transform-produce worker for the exactly-once SIGKILL tests (in -> out).

Environment: TIDINGS_BROKER, SRC, OUT, GROUP, MARKERS (a directory), EXACTLY_ONCE ("1"/"0"),
KILL_AT (comma-separated order numbers), MEMBER (a stable member name: on Kafka the
consumer's group.instance.id, so a restarted worker takes its place at once).

Each order's output is published first; then, for an order in KILL_AT handled for the first
time, the handler leaves a marker file and waits to be SIGKILLed: its output is already
published (at least once) or staged for the commit (exactly once).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tidings import App, Context, Event


class KillOrder(Event):
    n: int
    key: str


class KillShipped(Event):
    n: int
    key: str


def build() -> App:
    url = os.environ["TIDINGS_BROKER"]
    options: dict[str, object] = {}
    if url.startswith("kafka://"):
        options["consumer_config"] = {"group.instance.id": os.environ["MEMBER"]}
        options["delays"] = False  # no delayed follow-ups here: no scheduler
    else:  # a killed member's partitions are free again within a second
        options.update(session_timeout=1.0, heartbeat_interval=0.2)
    app = App("eos-worker", broker=url, grace=2.0, status_interval=None, **options)
    src = app.topic(os.environ["SRC"], partitions=3)
    out = app.topic(os.environ["OUT"], partitions=3)
    markers = Path(os.environ["MARKERS"])
    kill_at = {int(n) for n in os.environ.get("KILL_AT", "").split(",") if n}

    eos = os.environ["EXACTLY_ONCE"] == "1"

    @app.consumer(src, group=os.environ["GROUP"], exactly_once=eos)
    async def transform(e: KillOrder, ctx: Context) -> None:
        await ctx.publish_async(out, KillShipped(n=e.n, key=e.key), key=e.key)
        marker = markers / str(e.n)
        if e.n in kill_at and not marker.exists():
            marker.touch()
            await asyncio.sleep(60)  # SIGKILLed here

    return app


if __name__ == "__main__":
    build().run()
