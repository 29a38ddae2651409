"""start_now: a coroutine runs in the caller's turn of the event loop until it first waits,
then a task finishes it as if it had been one from the start."""

from __future__ import annotations

import asyncio

import pytest

from studyapp.realtime.eagerstart import start_now


async def test_a_coroutine_that_never_waits_is_done_when_start_now_returns() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("ran")

    assert start_now(quick(), "quick") is None
    assert done == ["ran"]  # no turn of the event loop has passed


async def test_a_coroutine_that_waits_is_finished_by_a_task() -> None:
    steps: list[str] = []
    gate = asyncio.get_running_loop().create_future()

    async def two_parts() -> None:
        steps.append("before")
        steps.append(await gate)
        await asyncio.sleep(0)  # a bare yield to the loop, too
        steps.append("after")

    task = start_now(two_parts(), "two-parts")
    assert steps == ["before"]
    assert task is not None
    assert not task.done()

    gate.set_result("gate")
    await asyncio.wait_for(task, 2)
    assert steps == ["before", "gate", "after"]


async def test_an_error_before_the_first_wait_reaches_the_caller() -> None:
    async def broken() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        start_now(broken(), "broken")


@pytest.mark.parametrize("failing", ["the awaited future", "the coroutine"])
async def test_an_error_after_a_wait_ends_the_task_with_it(failing: str) -> None:
    gate = asyncio.get_running_loop().create_future()

    async def broken_later() -> None:
        await gate
        raise ValueError("later")

    task = start_now(broken_later(), "broken-later")
    assert task is not None
    if failing == "the awaited future":
        gate.set_exception(KeyError("from the future"))
        expected: type[Exception] = KeyError
    else:
        gate.set_result(None)
        expected = ValueError
    with pytest.raises(expected):
        await task


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    cleaned: list[str] = []

    async def long_wait() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("finally")

    task = start_now(long_wait(), "long-wait")
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]
    assert task.cancelled()
