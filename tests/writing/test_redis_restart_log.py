"""A Redis restart under streaming replies logs what it is: Redis being away is expected, so
each component says so in one WARNING line per outage, not a traceback per call; and nothing
is logged as an ERROR, which is kept for real faults.

The live server runs on a redis-server of this test's own (tests/writing/private_redis.py)
and logs to a file the test reads.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.writing.conftest import LiveServer, db, make_participation, token_for
from tests.writing.private_redis import PrivateRedis

pytestmark = pytest.mark.django_db(transaction=True)

DOWN_S = 3.0  # long enough for every component to try Redis and fail a few times
STREAMS = 3


async def _open(server: LiveServer, participation) -> ClientConnection:
    url = f"{server.ws_url}/ws/study/demo/?token={token_for(participation)}"
    ws = await connect(url, origin=server.url, open_timeout=10)
    await ws.send(json.dumps({"type": "hello", "last_seq": None}))
    return ws


async def _until(ws: ClientConnection, kinds: tuple[str, ...], wait_s: float = 20) -> dict:
    deadline = time.monotonic() + wait_s
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if frame["type"] in kinds:
            return frame


async def test_a_redis_restart_under_streaming_replies_logs_warnings_not_tracebacks(
    tmp_path, settings, demo_version
):
    redis = PrivateRedis(tmp_path)
    redis.start()
    settings.REDIS_URL = redis.url
    log = tmp_path / "server.log"
    server = LiveServer(tokens_per_second=20, log=log, log_level="INFO")
    try:
        server.wait_ready()
        writers = [await db(make_participation, demo_version) for _ in range(STREAMS)]
        sockets = [await _open(server, writer) for writer in writers]
        for n, ws in enumerate(sockets):
            await _until(ws, ("state",))
            text = f"Help me write about budget travel, part {n}"
            await ws.send(json.dumps({"type": "send", "text": text, "client_msg_id": "m-1"}))
        for ws in sockets:
            await _until(ws, ("delta",))  # every reply is streaming

        redis.cli("SHUTDOWN", "NOSAVE")
        assert redis.proc is not None
        redis.proc.wait(timeout=10)
        # A page reconnects and sends while Redis is away.
        late = await _open(server, await db(make_participation, demo_version))
        await late.send(json.dumps({"type": "send", "text": "Hello", "client_msg_id": "m-1"}))
        await asyncio.sleep(DOWN_S)
        redis.start()

        for ws in sockets:  # each open page is told how its reply ended (Retry, its state)
            await _until(ws, ("turn_end", "turn_error", "state"))
        # The next reply streams whole, over a socket opened after the restart.
        again = await _open(server, await db(make_participation, demo_version))
        await _until(again, ("state",))
        await again.send(json.dumps({"type": "send", "text": "Shorter", "client_msg_id": "m-2"}))
        end = await _until(again, ("turn_end", "turn_error"))
        assert end["type"] == "turn_end", end
        for ws in [*sockets, late, again]:
            await ws.close()
    finally:
        server.stop()
        redis.stop()

    lines = log.read_text().splitlines()

    assert not [line for line in lines if "Traceback" in line]
    assert not [line for line in lines if "ERROR" in line]
    warnings = [line for line in lines if "WARNING" in line]
    # One per component (bus, replies) and one per failed turn (a record of what the
    # participant met), bounded whatever the outage lasts.
    assert len(warnings) <= STREAMS + 4, warnings
