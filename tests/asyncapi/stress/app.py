"""A stress model for the AsyncAPI document: what breaks other generators.

Discriminated and plain unions, nested and recursive models, enums, optional fields,
generic models, tuples, dicts, closed models, a versioned event with an upcaster, and a
consumer that retries off the partition (retry and delay channels).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from tidings import App, Event, Retry, upcaster

T = TypeVar("T")

app = App("stress")
orders = app.topic("stress-orders", partitions=4)
audit = app.topic("stress-audit")


class Currency(StrEnum):
    EUR = "EUR"
    USD = "USD"


class Money(BaseModel):
    amount: Decimal
    currency: Currency = Currency.EUR


class Card(BaseModel):
    kind: Literal["card"] = "card"
    last4: str = Field(pattern=r"^\d{4}$")


class Bank(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["bank"] = "bank"
    iban: str


class Line(BaseModel):
    sku: str
    quantity: int = Field(ge=1)
    price: Money
    children: list[Line] = []


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = None


class StressOrderPlaced(Event, version=3):
    """An order with everything in it."""

    order_id: UUID
    placed_at: datetime
    payment: Annotated[Card | Bank, Field(discriminator="kind")]
    lines: Page[Line]
    total: Money
    note: str | None = None
    tags: dict[str, int] = {}
    point: tuple[float, float] | None = None
    value: int | str | None = None


@upcaster(StressOrderPlaced, from_version=1)
def _v1(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@upcaster(StressOrderPlaced, from_version=2)
def _v2(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


class StressOrderCancelled(Event):
    model_config = ConfigDict(extra="forbid", frozen=True)
    order_id: UUID
    reason: Literal["customer", "fraud", "stock"]


class StressAudit(Event):
    entry: Page[str]


@app.consumer(orders, group="stress-billing", retry=Retry(attempts=3, keep_order=False))
def bill(event: StressOrderPlaced | StressOrderCancelled) -> None:
    return None


@app.consumer(audit, group="stress-audit")
def record(event: Event) -> None:
    return None
