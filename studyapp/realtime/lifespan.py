"""The ASGI lifespan: the chat's database worker processes start with the server and are
stopped with it (studyapp/realtime/dbcalls.py), and the garbage collector is set for serving.

The apps above add their own work through :func:`on_startup` (a task for the server's life) and
:func:`on_shutdown` (awaited before the database workers stop): the writing app drains its
streaming replies and sweeps for the replies of dead processes that way.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from studyapp.realtime import dbcalls

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]

_startup: list[Hook] = []
_shutdown: list[Hook] = []


def on_startup(hook: Hook) -> None:
    """Run ``hook()`` as a task from the server's start; it is cancelled when the server stops."""
    if hook not in _startup:
        _startup.append(hook)


def on_shutdown(hook: Hook) -> None:
    """Await ``hook()`` when the server stops, while the database workers still run."""
    if hook not in _shutdown:
        _shutdown.append(hook)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    background: list[asyncio.Future[None]] = []
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            dbcalls.warm_up()
            log.info("real-time path: %s", paths())
            collect_for_serving()
            background = [asyncio.ensure_future(hook()) for hook in _startup]
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for task in background:
                task.cancel()
            # The sockets have closed, but work runs on without them (a reply still stores its
            # turn and publishes its end) through the database workers.
            for hook in _shutdown:
                await hook()
            # After the sockets have closed: their last calls (disconnect events) are done.
            await asyncio.get_running_loop().run_in_executor(None, dbcalls.shutdown)
            await send({"type": "lifespan.shutdown.complete"})
            return


def paths() -> str:
    """Which side of each hand-written piece's switch this process runs (studyapp/settings.py)."""
    chosen = {
        "model HTTP": "http1" if settings.COLLAB_MODELS_FAST_HTTP else "httpx",
        "send SQL": "fastsql" if settings.WRITING_FAST_SQL else "orm",
        "Redis scripts": settings.RELAY_SCRIPT_CLIENT,
        "frames out": "eager" if settings.RELAY_EAGER_START else "create_task",
        "database calls": "pipe" if settings.WRITING_DB_PIPE else "ProcessPoolExecutor",
    }
    return ", ".join(f"{piece} {way}" for piece, way in chosen.items())


# Young collections every 10,000 allocations instead of 700: a burst of 200 replies allocates
# fast, and each collection stops the event loop.
GEN0_THRESHOLD = 10_000


def collect_for_serving() -> None:
    """Keep full collections short while serving.

    What exists at startup (Django, its apps, the libraries) lives as long as the process, yet
    every full collection walked it with the event loop stopped, in the middle of a burst of
    replies. Frozen, it is left out, and a full collection is several times shorter
    (bench/README.md, Relay).
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
