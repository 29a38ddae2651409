"""The ASGI lifespan: the chat's database worker processes start with the server and are
stopped with it (studyapp/writing/dbcalls.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from studyapp.writing import dbcalls


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            dbcalls.warm_up()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            # After the sockets have closed: their last calls (disconnect events) are done.
            await asyncio.get_running_loop().run_in_executor(None, dbcalls.shutdown)
            await send({"type": "lifespan.shutdown.complete"})
            return
