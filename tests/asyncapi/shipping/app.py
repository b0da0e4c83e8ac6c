"""A second service for the merge test, in its own package: it consumes what the stress app
publishes and owns `StressShipped`."""

from __future__ import annotations

from tests.asyncapi.stress.app import StressOrderCancelled, orders
from tidings import App, Event

app = App("shipping")
app.topic(orders.name, partitions=orders.partitions)
shipments = app.topic("stress-shipments")


class StressShipped(Event):
    order_id: str


@app.consumer(orders.name, group="stress-shipping")
def cancel(event: StressOrderCancelled) -> None:
    return None
