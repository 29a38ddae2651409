"""Start a coroutine at once, in the caller's turn of the event loop.

A task's first step waits for the next turn of the loop, behind everything else that is ready:
under a burst of replies a turn is long. :func:`start_now` runs the coroutine in the
caller's turn until it first has to wait; only then does a task take over (Python 3.12's
``eager_start`` does the same, and is used where it exists). With ``RELAY_EAGER_START`` off
it is a plain ``create_task``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Generator
from typing import Any

from django.conf import settings

# Strong references: the event loop keeps only weak ones to running tasks.
_running: set[asyncio.Future[None]] = set()


def start_now(coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Future[None] | None:
    """Run ``coroutine`` now until it first waits; return the task that finishes it, or None
    when it finished at once. An exception it raises before it waits propagates here."""
    loop = asyncio.get_running_loop()
    if not settings.RELAY_EAGER_START:
        task = loop.create_task(coroutine, name=name)
    elif sys.version_info >= (3, 12):  # the standard library's own (the tests run on 3.11)
        task = asyncio.Task(coroutine, loop=loop, name=name, eager_start=True)
        if task.done():
            task.result()
            return None
    else:
        try:
            waiting = coroutine.send(None)
        except StopIteration:
            return None
        task = loop.create_task(_finish(coroutine, waiting), name=name)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


class _Resumed:
    """Awaiting this drives ``coroutine`` on from where it first waited (on ``waiting``), as a
    task would have: what it waits for is handed up, a cancellation is thrown into it."""

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting: Any) -> None:
        self.coroutine = coroutine
        self.waiting = waiting

    def __await__(self) -> Generator[Any, None, None]:
        waiting = self.waiting
        while True:
            try:
                yield waiting
            except BaseException as exc:  # the task was cancelled: the coroutine decides
                try:
                    waiting = self.coroutine.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = self.coroutine.send(None)
                except StopIteration:
                    return


async def _finish(coroutine: Coroutine[Any, Any, None], waiting: Any) -> None:
    await _Resumed(coroutine, waiting)
