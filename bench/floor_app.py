"""The least a relay can do: a bare ASGI app for the relay benchmark's ``--app floor``.

It speaks just enough of the writing socket's protocol for the benchmark's participants
(``hello`` → ``state``; ``send`` → numbered ``turn_start``, ``delta``s and ``turn_end``) and
relays the model's reply with the same HTTP/1.1 client and the same coalescing as the app
(the first delta at once, then at most one frame every ``RELAY_FLUSH_MS``), but with nothing
else: no Django, no database, no Redis, no replay buffer, no authentication. Served by the
same uvicorn with the same options, it measures what any Python relay of this shape adds on
this machine, as a floor under the app's numbers. It is a benchmark instrument, not a part
of the app.

    FLOOR_MODEL_URL=http://127.0.0.1:PORT uvicorn bench.floor_app:app
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import urlsplit

from bench.sse import CHAT_HEADERS, ContentDeltas, chat_body
from collab_models.http1 import H1Pool

# The app's setting and default (studyapp/settings.py).
FLUSH_INTERVAL_S = int(os.environ.get("RELAY_FLUSH_MS") or 100) / 1000

_pool: H1Pool | None = None
_model: tuple[str, int] = ("", 0)


def _model_server() -> tuple[H1Pool, str, int]:
    """The process's client and the model server's host and port (read once)."""
    global _pool, _model
    if _pool is None:
        url = urlsplit(os.environ["FLOOR_MODEL_URL"])
        _pool, _model = H1Pool(), (url.hostname or "127.0.0.1", url.port or 80)
    return _pool, *_model


async def _reply(send: Any, text: str, seq: int) -> int:
    """Stream the model's reply to ``text`` as frames from ``seq``; return the next seq."""
    pool, host, port = _model_server()
    loop = asyncio.get_running_loop()
    pending: list[str] = []
    shown: list[str] = []
    wake: asyncio.Future[None] = loop.create_future()
    deltas = ContentDeltas()

    def sink(data: bytes) -> None:
        contents = deltas.feed(data)
        if contents:
            pending.extend(contents)
            if not wake.done():
                wake.set_result(None)

    async def frame(body: dict[str, Any]) -> None:
        nonlocal seq
        await send({"type": "websocket.send", "text": json.dumps({"seq": seq, **body})})
        seq += 1

    await frame({"type": "turn_start", "turn": 1, "user_text": text})
    outgoing = pool.send_now(
        "POST", host, port, "/v1/chat/completions", headers=CHAT_HEADERS, body=chat_body(text)
    )
    exchange = await pool.response(outgoing, connect_timeout=30)
    reader = asyncio.ensure_future(exchange.pump(sink, lambda: loop.time() + 120))
    try:
        while not reader.done():
            await asyncio.wait({reader, wake}, return_when=asyncio.FIRST_COMPLETED)
            next_flush = loop.time() + FLUSH_INTERVAL_S
            if pending:
                chunk = "".join(pending)
                pending.clear()
                shown.append(chunk)
                await frame({"type": "delta", "text": chunk})
            if not reader.done():
                wake = loop.create_future()
                await asyncio.wait({reader}, timeout=max(0.0, next_flush - loop.time()))
        if pending:
            shown.append("".join(pending))
            await frame({"type": "delta", "text": shown[-1]})
        await reader
    finally:
        reader.cancel()
        await exchange.aclose()
    await frame({"type": "turn_end", "turn": 1, "text": "".join(shown)})
    return seq


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    seq = 1
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.disconnect":
            return
        elif message["type"] == "websocket.receive":
            frame = json.loads(message["text"])
            if frame["type"] == "hello":
                await send({"type": "websocket.send", "text": json.dumps({"type": "state"})})
            elif frame["type"] == "send":
                seq = await _reply(send, frame["text"], seq)
