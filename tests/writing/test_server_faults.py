"""Faults of real server processes during replies: a SIGTERM, a kill -9, PostgreSQL unreachable.

Each test starts uvicorn processes of its own (tests/writing/conftest.py, ``LiveServer``) that
stream the offline model slowly, so the fault lands in the middle of the replies; the sockets
that must hear the outcome sit on the session's two healthy servers, which they reach through
Redis as a participant's other tab would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.realtime.framestore import frame_store
from studyapp.writing.lost import LOST_ERROR
from studyapp.writing.models import Message, Role
from tests.tcp_proxy import CuttableProxy
from tests.writing.conftest import (
    LiveServer,
    _database_url,
    database_address,
    db,
    make_participation,
    token_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

ENDS = {"turn_end", "turn_error"}


class LiveClient:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, server: LiveServer, participation: Any) -> LiveClient:
        url = f"{server.ws_url}/ws/study/demo/?token={token_for(participation)}"
        client = cls(await connect(url, origin=server.url, open_timeout=20))
        await client.send({"type": "hello", "last_seq": None, "focused": True})
        assert (await client.recv(20))["type"] == "state"
        return client

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, wait_s: float) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), wait_s))

    async def until(self, kinds: set[str], wait_s: float = 30) -> list[dict[str, Any]]:
        """Frames up to and including the first of ``kinds``, all within ``wait_s``."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_s
        while not got or got[-1]["type"] not in kinds:
            got.append(await self.recv(max(0.1, deadline - time.monotonic())))
        return got

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


def _replies(participation: Any) -> list[Message]:
    return list(
        Message.objects.filter(participation=participation, role=Role.ASSISTANT).order_by("id")
    )


def _model_errors(participation: Any) -> int:
    return ParticipationEvent.objects.filter(
        participation=participation, kind=EventKind.MODEL_ERROR
    ).count()


@contextlib.contextmanager
def _server(tokens_per_second: int, **overrides: str) -> Iterator[LiveServer]:
    server = LiveServer(tokens_per_second, **overrides)
    try:
        server.wait_ready()
        yield server
    finally:
        server.proc.kill()
        server.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # its database worker processes
            os.killpg(server.proc.pid, signal.SIGKILL)


async def _streaming(server: LiveServer, watching: list[LiveServer], participations: list[Any]):
    """Each participation sends a message on ``server`` and is watched from each of
    ``watching``; returns the watching sockets once every reply streams."""
    senders = await asyncio.gather(*(LiveClient.open(server, p) for p in participations))
    watchers = await asyncio.gather(
        *(LiveClient.open(w, p) for p in participations for w in watching)
    )
    text = {"type": "send", "text": "Write a blog post about budget travel in Lisbon"}
    await asyncio.gather(*(s.send({**text, "client_msg_id": "m1"}) for s in senders))
    # Stored (ack) and streaming (a delta), as every watcher sees.
    await asyncio.gather(*(s.until({"ack"}) for s in senders))
    await asyncio.gather(*(w.until({"delta"}) for w in watchers))
    return senders, watchers


async def _no_marker_left(participations: list[Any]) -> None:
    for participation in participations:
        assert await frame_store().generation(participation.public_id.hex) is None


async def _retry_works(client: LiveClient, others: list[LiveClient]) -> None:
    await client.send({"type": "retry"})
    frames = await client.until({"turn_end", "turn_error"})
    assert frames[0] == {"type": "ack", "of": "retry", "turn": 1}
    assert frames[-1]["type"] == "turn_end"
    for other in others:  # the participant's other tab sees it too, with no second failure
        assert [f["type"] for f in await other.until(ENDS)][-1] == "turn_end"


async def test_sigterm_ends_every_streaming_reply_stored_or_retryable(demo_version, live_servers):
    watcher_server = live_servers[0]
    participations = [await db(make_participation, demo_version) for _ in range(20)]
    with _server(6, SHUTDOWN_DRAIN_S="2") as server:
        senders, watchers = await _streaming(server, [watcher_server], participations)
        server.proc.send_signal(signal.SIGTERM)
        ends = [(await w.until(ENDS, wait_s=60))[-1] for w in watchers]
        # uvicorn ends its graceful shutdown by re-raising the signal.
        assert await asyncio.to_thread(server.proc.wait, 60) in (0, -signal.SIGTERM)

    failed = 0
    for participation, end in zip(participations, ends, strict=True):
        (reply,) = await db(_replies, participation)
        assert str(reply.generation_id) == end["generation_id"]
        if end["type"] == "turn_end":  # finished within the drain
            assert (reply.is_active, reply.text) == (True, end["text"])
        else:
            failed += 1
            assert end["retry"] is True
            assert (reply.is_active, reply.finish_reason) == (False, "error")
            assert "server stopped" in reply.error
    assert failed, "every reply finished within the drain: it tested nothing"
    await _no_marker_left(participations)
    retryable = next(w for w, end in zip(watchers, ends, strict=True) if end["type"] != "turn_end")
    await _retry_works(retryable, [])
    for client in [*senders, *watchers]:
        await client.close()


async def test_kill_9_ends_its_replies_on_the_survivors_once(demo_version, live_servers):
    participations = [await db(make_participation, demo_version) for _ in range(6)]
    with _server(6, GENERATION_TTL_S="3") as doomed:
        senders, watchers = await _streaming(doomed, live_servers, participations)
        doomed.proc.kill()
        ends = [(await w.until(ENDS, wait_s=60))[-1] for w in watchers]

    pairs = [watchers[i : i + 2] for i in range(0, len(watchers), 2)]
    for participation, (first, second) in zip(participations, pairs, strict=True):
        end = ends[watchers.index(first)]
        assert end == ends[watchers.index(second)]  # both tabs, whichever server resolved it
        assert (end["type"], end["retry"]) == ("turn_error", True)
        (reply,) = await db(_replies, participation)
        assert str(reply.generation_id) == end["generation_id"]
        assert (reply.is_active, reply.finish_reason, reply.error) == (False, "error", LOST_ERROR)
        assert await db(_model_errors, participation) == 1
        await _retry_works(first, [second])
    await _no_marker_left(participations)
    for client in [*senders, *watchers]:
        await client.close()


async def _quiet(client: LiveClient, frames: list[dict[str, Any]], quiet_s: float) -> None:
    """Collect frames until none has come for ``quiet_s`` (the reply has streamed) or it ends."""
    while not frames or frames[-1]["type"] not in ENDS:
        try:
            frames.append(await client.recv(quiet_s))
        except TimeoutError:
            return


async def test_a_reply_that_ends_while_the_database_is_down_is_stored_after(demo_version):
    participation = await db(make_participation, demo_version)
    proxy = CuttableProxy(database_address())
    try:
        url = _database_url("127.0.0.1", proxy.port)
        with _server(10, DATABASE_URL=url, TURN_STORE_RETRY_S="90") as server:
            client = await LiveClient.open(server, participation)
            await client.send({"type": "send", "text": "Write about budget travel in Lisbon"})
            frames = await client.until({"ack"})
            frames += await client.until({"delta"})
            proxy.cut()
            await _quiet(client, frames, quiet_s=3)  # streamed to its end, not stored
            assert frames[-1]["type"] not in ENDS, frames[-1]
            await asyncio.sleep(2)  # a few more tries against the dead database
            proxy.restore()
            frames += await client.until(ENDS, wait_s=90)
            await client.close()
    finally:
        proxy.close()

    end = frames[-1]
    assert end["type"] == "turn_end", end
    assert end["text"] == "".join(f["text"] for f in frames if f["type"] == "delta")
    (reply,) = await db(_replies, participation)
    assert (reply.is_active, reply.text, str(reply.generation_id)) == (
        True, end["text"], end["generation_id"]
    )  # fmt: skip


async def test_a_message_sent_while_the_database_is_down_is_stored_when_it_returns(demo_version):
    """The page sends each message with an id; the server waits the outage out rather than
    refusing the message and leaving the participant to send it again by hand."""
    participation = await db(make_participation, demo_version)
    proxy = CuttableProxy(database_address())
    try:
        url = _database_url("127.0.0.1", proxy.port)
        with _server(200, DATABASE_URL=url, TURN_STORE_RETRY_S="90") as server:
            client = await LiveClient.open(server, participation)
            proxy.cut()
            text = "Write about budget travel in Porto"
            await client.send({"type": "send", "text": text, "client_msg_id": "m-outage-1"})
            await asyncio.sleep(3)  # the message's store fails meanwhile, and is tried again
            proxy.restore()
            frames = await client.until(ENDS | {"error"}, wait_s=90)
            await client.close()
    finally:
        proxy.close()
    assert [f for f in frames if f["type"] == "error"] == []
    assert any(f["type"] == "ack" and f["client_msg_id"] == "m-outage-1" for f in frames)
    assert frames[-1]["type"] == "turn_end"
    users = await db(
        lambda: list(
            Message.objects.filter(participation=participation, role=Role.USER).values_list(
                "text", flat=True
            )
        )
    )
    assert users == [text]
    [reply] = await db(_replies, participation)
    assert reply.text == frames[-1]["text"]
