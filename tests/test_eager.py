"""eager_gather: asyncio.gather's results, without tasks for work that never waits."""

from __future__ import annotations

import asyncio
import gc
import types

import pytest

from scorer.eager import eager_gather


async def _now(value: int) -> int:
    return value


async def _later(value: int, delay: float = 0.01) -> int:
    await asyncio.sleep(delay)
    return value


async def _waits_forever(cancelled: asyncio.Event) -> int:
    """Waits until cancelled, and says so on ``cancelled``."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        cancelled.set()
        raise
    return 0


async def test_coroutines_that_never_wait_make_no_tasks() -> None:
    created = 0
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        assert await eager_gather(_now(1), _now(2), _now(3)) == (1, 2, 3)
        assert created == 0
        assert await eager_gather(_now(1), _later(2), _now(3)) == (1, 2, 3)
        assert created == 0, "a lone waiting coroutine runs on in the caller's task"
        assert await eager_gather(_now(1), _later(2), _now(3), _later(4)) == (1, 2, 3, 4)
        assert created == 1, "a task per waiting coroutine but the last, and only those"
    finally:
        loop.set_task_factory(factory)


async def test_waiting_coroutines_run_concurrently() -> None:
    started = asyncio.get_running_loop().time()
    assert await eager_gather(*(_later(i, 0.2) for i in range(5))) == (0, 1, 2, 3, 4)
    assert asyncio.get_running_loop().time() - started < 0.6


async def test_errors_propagate_and_unstarted_coroutines_are_closed() -> None:
    async def boom() -> int:
        raise ValueError("boom")

    async def late_boom() -> int:
        await asyncio.sleep(0)
        raise KeyError("late")

    never = _now(9)
    assert isinstance(never, types.CoroutineType)  # a native coroutine: it has cr_frame
    with pytest.raises(ValueError, match="boom"):
        await eager_gather(boom(), never)
    assert never.cr_frame is None, "closed, not left to warn 'never awaited'"
    with pytest.raises(KeyError):
        await eager_gather(_now(1), late_boom())


async def test_cancellation_reaches_the_waiting_coroutine() -> None:
    cancelled = asyncio.Event()

    outer = asyncio.ensure_future(eager_gather(_now(1), _waits_forever(cancelled)))
    await asyncio.sleep(0.01)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await asyncio.wait_for(cancelled.wait(), 1)


async def test_cancellation_reaches_every_waiting_coroutine() -> None:
    # The first waits in a task of its own, the last in the caller's task: both go.
    first, last = asyncio.Event(), asyncio.Event()
    outer = asyncio.ensure_future(
        eager_gather(_waits_forever(first), _now(2), _waits_forever(last))
    )
    await asyncio.sleep(0.01)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await asyncio.sleep(0.01)
    assert first.is_set() and last.is_set()


async def test_context_variables_set_by_the_caller_are_seen_after_waiting() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def read_after_wait() -> str:
        await asyncio.sleep(0)
        return var.get()

    var.set("caller")
    assert await eager_gather(read_after_wait(), _now(0)) == ("caller", 0)


@pytest.mark.parametrize("error", [ValueError, asyncio.CancelledError])
async def test_a_failing_first_step_closes_the_coroutines_already_started(
    error: type[BaseException],
) -> None:
    # Their finally blocks run at once (a timer they set is dropped then), not when
    # the garbage collector gets to them; CancelledError is no Exception but counts.
    released: list[str] = []

    async def holds() -> int:
        try:
            await asyncio.sleep(60)
        finally:
            released.append("released")
        return 0

    async def fails_at_once() -> int:
        raise error

    started, never = holds(), _now(9)  # held here too: closed, not left to refcounting
    assert isinstance(started, types.CoroutineType) and isinstance(never, types.CoroutineType)
    with pytest.raises(error):
        await eager_gather(started, fails_at_once(), never)
    assert released == ["released"]
    assert started.cr_frame is None and never.cr_frame is None


@pytest.mark.parametrize("failing", ["task", "last"])
async def test_an_error_in_a_waiting_coroutine_cancels_the_others(failing: str) -> None:
    # Whether it waited in a task of its own or in the caller's task (the last).
    cancelled = asyncio.Event()

    async def late_boom() -> int:
        await asyncio.sleep(0)
        raise KeyError("late")

    with pytest.raises(KeyError):
        if failing == "last":
            await eager_gather(_waits_forever(cancelled), late_boom())
        else:
            await eager_gather(late_boom(), _waits_forever(cancelled), _later(3, 0))
    await asyncio.wait_for(cancelled.wait(), 1)


async def test_cancellation_reaches_a_coroutine_between_two_steps() -> None:
    # Cancelled while it waits on no future (asyncio.sleep(0)): the task throws
    # CancelledError in, and it must reach the coroutine, not be sent on as None.
    steps = 0

    async def spins() -> str:
        nonlocal steps
        for _ in range(1000):
            steps += 1
            await asyncio.sleep(0)
        return "never cancelled"

    outer = asyncio.ensure_future(eager_gather(_now(1), spins()))
    while steps < 3:
        await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert steps < 1000


async def test_the_lone_waiting_coroutine_answers_a_cancellation_as_if_awaited() -> None:
    # It runs on in the caller's task: what it makes of a cancellation is the caller's.
    async def gives_up() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "gave up"
        return "slept"

    outer = asyncio.ensure_future(eager_gather(_now(1), gives_up()))
    await asyncio.sleep(0.01)
    outer.cancel()
    assert await outer == (1, "gave up")


async def _fails(error: BaseException, delay: float = 0) -> int:
    await asyncio.sleep(delay)
    raise error


@pytest.mark.parametrize("then", ["the last fails", "the caller is cancelled"])
async def test_a_task_that_failed_first_has_its_error_reported(then: str) -> None:
    # Regression: the error of a task that had failed while the last coroutine still
    # waited was marked retrieved by the cancel() meant for tasks still running, so it
    # was neither raised nor reported. It is reported, as asyncio does any error nobody
    # retrieved, when the task goes.
    loop = asyncio.get_running_loop()
    reported: list[object] = []
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context.get("exception")))
    try:
        if then == "the last fails":
            with pytest.raises(KeyError):
                await eager_gather(_fails(ValueError("first")), _fails(KeyError("last"), 0.01))
        else:
            outer = asyncio.ensure_future(
                eager_gather(_fails(ValueError("first")), _waits_forever(asyncio.Event()))
            )
            await asyncio.sleep(0.01)
            outer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await outer
            del outer
        await asyncio.sleep(0)  # the loop lets go of the tasks: asyncio reports then
        gc.collect()
    finally:
        loop.set_exception_handler(handler)
    assert [type(error) for error in reported] == [ValueError]


async def test_no_coroutine_is_left_unawaited_when_closing_a_started_one_fails() -> None:
    # Regression: the coroutines never started were closed after the started ones, so
    # when a started one's close() raised (its finally block failing), they were left
    # to warn "coroutine ... was never awaited".
    async def cleanup_fails() -> int:
        try:
            await asyncio.sleep(60)
        finally:
            raise OSError("cleanup")
        return 0

    async def fails_at_once() -> int:
        raise ValueError("boom")

    never = _now(9)
    assert isinstance(never, types.CoroutineType)
    with pytest.raises(OSError) as raised:
        await eager_gather(cleanup_fails(), fails_at_once(), never)
    closing = raised.value.__context__  # the GeneratorExit close() threw in
    assert isinstance(closing, GeneratorExit), closing
    assert isinstance(closing.__context__, ValueError), "the first error is chained"
    assert never.cr_frame is None, "closed, not left to warn 'never awaited'"
