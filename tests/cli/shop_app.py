"""A small app for CLI tests that load `tests.cli.shop_app:app` in this process."""

from __future__ import annotations

from tidings import App, Event

app = App("shop")
orders = app.topic("shop-orders", partitions=2)


class ShopOrderPlaced(Event):
    order_id: str
    amount: int


@app.consumer(orders, group="shop-billing")
def bill(event: ShopOrderPlaced) -> None:
    return None
