"""Read a handler's signature: which events it takes, and whether it wants the Context."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import types
import typing
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from tidings.events import Event
from tidings.exceptions import HandlerSignatureError, HandlerTimeout


@dataclass(frozen=True)
class HandlerInfo:
    """What dispatch needs to know about a handler."""

    func: Callable[..., Any]
    name: str
    accepts: frozenset[type[Event]] | None
    """The Event classes it takes; None means every event (annotated `Event`)."""
    takes_context: bool
    is_async: bool
    is_batch: bool

    def wants(self, event_type: str) -> bool:
        """Return whether an event of wire type `event_type` goes to this handler."""
        if self.accepts is None:
            return True
        return event_type in self.type_names

    @property
    def type_names(self) -> frozenset[str]:
        return frozenset(c.event_type for c in self.accepts or ())

    def single_class(self) -> type[Event] | None:
        """Return the one accepted class when there is exactly one, else None."""
        if self.accepts is not None and len(self.accepts) == 1:
            return next(iter(self.accepts))
        return None


def inspect_handler(func: Callable[..., Any], *, batch: bool) -> HandlerInfo:
    """Validate `func` as a handler and describe it.

    Raises:
        HandlerSignatureError: the first parameter is not annotated with an Event type (or,
            for a batch handler, a list of one), or there are too many parameters.
    """
    # "module:function" reads well in logs even for handlers defined inside a factory.
    short = getattr(func, "__name__", None) or type(func).__name__
    module = getattr(func, "__module__", None)
    name = f"{module}:{short}" if module else short
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params or len(params) > 2:
        raise HandlerSignatureError(
            f"Handler {name} must take (event) or (event, ctx); it takes {len(params)} "
            "positional parameters."
        )
    try:
        hints = typing.get_type_hints(func)
    except NameError as exc:
        raise HandlerSignatureError(
            f"Handler {name} has an annotation that cannot be resolved ({exc}). Import the "
            "Event class at module level."
        ) from exc
    annotation = hints.get(params[0].name)
    if annotation is None:
        raise HandlerSignatureError(
            f"Handler {name}: annotate its first parameter with an Event subclass, a union of "
            f"them, or Event, e.g. `def {getattr(func, '__name__', 'handler')}(event: MyEvent)`."
        )
    if batch:
        if typing.get_origin(annotation) not in (list, typing.Sequence, _abc_sequence()):
            raise HandlerSignatureError(
                f"Handler {name} is a batch consumer: annotate its first parameter as "
                f"list[MyEvent], not {annotation!r}."
            )
        (annotation,) = typing.get_args(annotation) or (Event,)
    accepts = _event_classes(annotation, name)
    is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )
    return HandlerInfo(
        func=func,
        name=name,
        accepts=accepts,
        takes_context=len(params) == 2,
        is_async=is_async,
        is_batch=batch,
    )


def _abc_sequence() -> Any:
    import collections.abc

    return collections.abc.Sequence


def _event_classes(annotation: Any, name: str) -> frozenset[type[Event]] | None:
    if annotation is Event:
        return None
    origin = typing.get_origin(annotation)
    members = (
        typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    )
    out: set[type[Event]] = set()
    for member in members:
        if member is Event:
            return None
        if not (isinstance(member, type) and issubclass(member, Event)):
            raise HandlerSignatureError(
                f"Handler {name}: {member!r} is not an Event subclass. Annotate the first "
                "parameter with Event subclasses (e.g. `event: AccountBanned | AccountClosed`)."
            )
        out.add(member)
    return frozenset(out)


async def call_handler(
    handler: HandlerInfo,
    timeout: float | None,
    executor: Executor | None,
    payload: Any,
    ctx: Any,
) -> None:
    """Run `handler` on `payload` (and `ctx` unless None): awaited, or on `executor`.

    Raises:
        HandlerTimeout: it ran longer than `timeout` seconds.
    """
    func = handler.func
    args = (payload,) if ctx is None else (payload, ctx)
    if handler.is_async:
        if timeout is None:
            await func(*args)
            return
        try:
            async with asyncio.timeout(timeout):
                await func(*args)
        except TimeoutError:
            raise HandlerTimeout(
                f"{handler.name} ran longer than its timeout of {timeout:g} s"
            ) from None
        return
    # In the handler's thread, the caller's context (a trace span, say) is current too.
    run = contextvars.copy_context().run
    fut = asyncio.get_running_loop().run_in_executor(executor, run, _call_sync, func, args)
    if timeout is None:
        await fut
        return
    try:
        await asyncio.wait_for(fut, timeout)
    except TimeoutError:
        raise HandlerTimeout(
            f"{handler.name} ran longer than its timeout of {timeout:g} s (the thread keeps "
            "running; make the handler honour a deadline)"
        ) from None


def _call_sync(func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    func(*args)
