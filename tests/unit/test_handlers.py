from typing import Union

import pytest

from tidings import Context, Event, HandlerSignatureError
from tidings.runtime.handlers import inspect_handler


class HOpened(Event):
    account_id: str


class HBanned(Event):
    account_id: str


def test_single_type_union_and_catch_all() -> None:
    async def one(e: HOpened) -> None: ...

    def union(e: HOpened | HBanned, ctx: Context) -> None: ...

    def old_union(e: Union[HOpened, HBanned]) -> None: ...  # noqa: UP007

    def every(e: Event) -> None: ...

    i = inspect_handler(one, batch=False)
    assert i.accepts == {HOpened} and i.is_async and not i.takes_context
    assert i.wants("HOpened") and not i.wants("HBanned")
    u = inspect_handler(union, batch=False)
    assert u.accepts == {HOpened, HBanned} and u.takes_context and not u.is_async
    assert inspect_handler(old_union, batch=False).accepts == {HOpened, HBanned}
    assert inspect_handler(every, batch=False).accepts is None
    assert inspect_handler(every, batch=False).wants("Anything")


def test_batch_handler_takes_a_list() -> None:
    def batch(events: list[HOpened]) -> None: ...

    assert inspect_handler(batch, batch=True).accepts == {HOpened}
    with pytest.raises(HandlerSignatureError, match="list"):
        inspect_handler(batch, batch=False)


def test_bad_annotations_are_refused_with_a_fix() -> None:
    def plain(e: dict) -> None: ...  # type: ignore[type-arg]

    def missing(e) -> None: ...  # type: ignore[no-untyped-def]

    def too_many(e: HOpened, ctx: Context, extra: int) -> None: ...

    with pytest.raises(HandlerSignatureError, match="not an Event subclass"):
        inspect_handler(plain, batch=False)
    with pytest.raises(HandlerSignatureError, match="annotate its first parameter"):
        inspect_handler(missing, batch=False)
    with pytest.raises(HandlerSignatureError, match="3 positional"):
        inspect_handler(too_many, batch=False)
