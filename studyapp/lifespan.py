"""The ASGI lifespan: the chat's database worker processes start with the server and are
stopped with it (studyapp/writing/dbcalls.py), after the replies still streaming were given
``SHUTDOWN_DRAIN_S`` to end and the rest were stored as failed (studyapp/writing/relay.py); a
sweep ends the replies of dead processes (studyapp/writing/lost.py); the garbage collector is
set for serving, and collects its middle generation when the server is idle
(studyapp/idlegc.py)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from django.conf import settings

from studyapp.idlegc import collect_when_idle
from studyapp.writing import dbcalls, relay
from studyapp.writing.lost import lost_sweep


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    background: list[asyncio.Future[None]] = []
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            dbcalls.warm_up()
            collect_for_serving()
            background = [
                asyncio.ensure_future(collect_when_idle()),
                asyncio.ensure_future(lost_sweep()),
            ]
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for task in background:
                task.cancel()
            # The sockets have closed, but replies run on without them: each still stores its
            # turn and publishes its end (to sockets on other processes) through the workers.
            await relay.generations_drain(settings.SHUTDOWN_DRAIN_S)
            # After the sockets have closed: their last calls (disconnect events) are done.
            await asyncio.get_running_loop().run_in_executor(None, dbcalls.shutdown)
            await send({"type": "lifespan.shutdown.complete"})
            return


# Young collections every 10,000 allocations instead of 700: a burst of 200 replies allocates
# fast, and each collection stops the event loop.
GEN0_THRESHOLD = 10_000


def collect_for_serving() -> None:
    """Keep full collections short while serving.

    What exists at startup (Django, its apps, the libraries: some 100,000 objects) lives as
    long as the process, yet every full collection walked it: 100-150 ms with the event loop
    stopped, in the middle of a burst of 200 replies (bench/relay). Frozen, it is left out,
    and a full collection takes some 20-35 ms.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
