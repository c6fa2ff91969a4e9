"""``eager_gather``: ``asyncio.gather`` that creates no task for work that never waits.

Most lookups of a busy site are answered from the cache, so the coroutines that
gather them finish without ever suspending. ``asyncio.gather`` would still wrap
each in a Task (several per message, a large share of a cached check's CPU).
This runs every coroutine eagerly up to its first suspension, as Python 3.12's
``asyncio.eager_task_factory`` does, and makes a task only of those that
actually wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar, overload

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


class _Resume:
    """Awaitable that carries on a coroutine which already yielded ``pending``."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._pending
        while True:
            try:
                value = yield pending  # the Task waits on what the coroutine waited on
            except BaseException as error:  # cancellation included: hand it on
                try:
                    pending = coro.throw(error)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(value)
                except StopIteration as stop:
                    return stop.value


async def _resumed(coro: Coroutine[Any, Any, T], pending: Any) -> T:
    result: T = await _Resume(coro, pending)
    return result


@overload
async def eager_gather(
    a: Coroutine[Any, Any, A], b: Coroutine[Any, Any, B], c: Coroutine[Any, Any, C], /
) -> tuple[A, B, C]: ...
@overload
async def eager_gather(*coros: Coroutine[Any, Any, T]) -> tuple[T, ...]: ...
async def eager_gather(*coros: Coroutine[Any, Any, Any]) -> tuple[Any, ...]:
    """Results of ``coros`` in order; only the ones that suspend become tasks, and the
    last of those runs on in the calling task (a lone DNS miss needs no task at all)."""
    if len(coros) == 1:  # a PTR's one name, a domain's one MX host: nothing to gather
        return (await coros[0],)
    results: list[Any] = [None] * len(coros)
    suspended: list[tuple[int, Coroutine[Any, Any, Any], Any]] = []
    for index, coro in enumerate(coros):
        try:
            pending = coro.send(None)
        except StopIteration as stop:
            results[index] = stop.value
        except BaseException:
            for rest in coros[index + 1 :]:
                rest.close()  # never started: close, so nothing warns "never awaited"
            # The started ones last: close() runs their finally blocks, which may raise
            # (that error goes up, with this one as its context).
            for _, started, _ in suspended:
                started.close()
            raise
        else:
            suspended.append((index, coro, pending))
    if not suspended:
        return tuple(results)
    *others, (last_index, last, last_pending) = suspended
    tasks = [(i, asyncio.ensure_future(_resumed(c, p))) for i, c, p in others]
    try:
        results[last_index] = await _Resume(last, last_pending)
        for index, task in tasks:
            results[index] = await task
    except BaseException:
        for _, task in tasks:
            # As asyncio.gather does when it is cancelled. Not a task that has failed
            # already: cancel() would mark its error retrieved, and it would be lost
            # unseen; left be, asyncio reports it ("Task exception was never retrieved").
            if not task.done():
                task.cancel()
        raise
    return tuple(results)
