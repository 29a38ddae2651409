"""The relay through real servers: uvicorn processes, real WebSockets, Redis between them.

Replies stream at 25 tokens/s here (a few seconds each), so the tests can drop a socket in the
middle of one and come back, to the same process or to the other.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.writing.models import Message, Role
from tests.writing.conftest import LiveServer, db, make_participation, token_for, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class LiveClient:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, server: LiveServer, participation) -> LiveClient:
        url = f"{server.ws_url}/ws/study/demo/?token={token_for(participation)}"
        return cls(await connect(url, origin=server.url, open_timeout=10))

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), 15))
        self.frames.append(frame)
        return frame

    async def until(self, kinds: set[str]) -> list[dict[str, Any]]:
        got = []
        while True:
            got.append(await self.recv())
            if got[-1]["type"] in kinds:
                return got

    async def hello(self, last_seq: int | None) -> dict[str, Any]:
        await self.send({"type": "hello", "last_seq": last_seq, "focused": True})
        state = await self.recv()
        assert state["type"] == "state"
        return state

    async def close(self) -> None:
        await self.ws.close()


def _replies(participation) -> list[Message]:
    return list(Message.objects.filter(participation=participation, role=Role.ASSISTANT))


def _assert_numbered_once(frames: list[dict[str, Any]], after: int) -> None:
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs, "no numbered frames"
    assert seqs == list(range(after + 1, after + 1 + len(seqs))), seqs  # no gap, no repeat


async def _start_and_drop(server: LiveServer, participation) -> tuple[int, str]:
    """Send a message, read part of the reply, drop the socket; return (last seq, text seen)."""
    first = await LiveClient.open(server, participation)
    state = await first.hello(None)
    await first.send({"type": "send", "text": "Write a blog post about budget travel in Lisbon"})
    frames = await first.until({"delta"})
    while sum(f["type"] == "delta" for f in frames) < 3:
        frames.append(await first.recv())
    _assert_numbered_once(frames, state["last_seq"])
    # Mid-stream: nothing is stored until the turn ends.
    assert await db(_replies, participation) == []
    await first.close()
    await asyncio.sleep(0.5)  # the reply goes on without a socket
    seen = "".join(f["text"] for f in frames if f["type"] == "delta")
    return frames[-1]["seq"], seen


async def _resume(server: LiveServer, participation, last_seq: int | None, seen: str) -> str:
    """Reconnect; return the full reply text assembled exactly as a page would."""
    again = await LiveClient.open(server, participation)
    state = await again.hello(last_seq)
    assert state["generation"] is not None, "the reply should still be streaming"
    if last_seq is not None:
        assert state["last_seq"] == last_seq
    else:
        seen = ""
    frames = await again.until({"turn_end", "turn_error"})
    await again.close()
    _assert_numbered_once(frames, state["last_seq"])
    end = frames[-1]
    assert end["type"] == "turn_end"
    text = seen + "".join(f["text"] for f in frames if f["type"] == "delta")
    assert text == end["text"]
    return text


async def test_reload_mid_stream_resumes_after_the_last_seen_frame(live_servers, demo_version):
    participation = await db(make_participation, demo_version)
    last_seq, seen = await _start_and_drop(live_servers[0], participation)
    text = await _resume(live_servers[0], participation, last_seq, seen)
    (reply,) = await db(_replies, participation)
    assert reply.text == text
    assert reply.finish_reason == "stop"


async def test_a_fresh_page_mid_stream_gets_the_whole_reply_once(live_servers, demo_version):
    participation = await db(make_participation, demo_version)
    _, seen = await _start_and_drop(live_servers[0], participation)
    text = await _resume(live_servers[0], participation, None, seen)
    assert text.startswith(seen)
    (reply,) = await db(_replies, participation)
    assert reply.text == text


async def test_reconnecting_to_another_process_gets_the_reply_once(live_servers, demo_version):
    server_a, server_b = live_servers
    participation = await db(make_participation, demo_version)
    last_seq, seen = await _start_and_drop(server_a, participation)
    text = await _resume(server_b, participation, last_seq, seen)
    (reply,) = await db(_replies, participation)
    assert reply.text == text


async def test_stop_reaches_a_reply_streaming_in_another_process(live_servers, demo_version):
    server_a, server_b = live_servers
    participation = await db(make_participation, demo_version)
    streaming = await LiveClient.open(server_a, participation)
    await streaming.hello(None)
    await streaming.send({"type": "send", "text": "Write a long story about a lighthouse"})
    await streaming.until({"delta"})

    other = await LiveClient.open(server_b, participation)
    await other.hello(None)
    started = time.monotonic()
    await other.send({"type": "stop"})
    end_b = (await other.until({"turn_end"}))[-1]
    end_a = (await streaming.until({"turn_end"}))[-1]
    assert time.monotonic() - started < 2  # well before the reply would have ended
    assert end_a == end_b
    assert end_a["finish_reason"] == "cancelled"
    await streaming.close()
    await other.close()
    (reply,) = await db(_replies, participation)
    assert reply.finish_reason == "cancelled"
    assert reply.text == end_a["text"]
    assert len(reply.text) < 300  # far from the full reply


async def test_a_tab_on_another_process_sees_the_reply_live_every_frame_once(
    live_servers, demo_version
):
    server_a, server_b = live_servers
    participation = await db(make_participation, demo_version)
    sender = await LiveClient.open(server_a, participation)
    watcher = await LiveClient.open(server_b, participation)
    await sender.hello(None)
    state = await watcher.hello(None)
    await sender.send({"type": "send", "text": "Write a blog post about budget travel in Lisbon"})
    seen_by_watcher = await watcher.until({"turn_end", "turn_error"})
    seen_by_sender = await sender.until({"turn_end", "turn_error"})
    _assert_numbered_once(seen_by_watcher, state["last_seq"])
    assert seen_by_watcher[0]["type"] == "turn_start"
    assert seen_by_watcher[-1]["type"] == "turn_end"
    # Pub/sub and direct delivery carry the same frames, numbered alike.
    assert seen_by_watcher == [f for f in seen_by_sender if "seq" in f]
    await sender.close()
    await watcher.close()
    (reply,) = await db(_replies, participation)
    assert reply.text == seen_by_watcher[-1]["text"]

    def disconnects() -> int:
        return ParticipationEvent.objects.filter(
            participation=participation, kind=EventKind.DISCONNECT
        ).count()

    async def both_logged() -> bool:
        return await db(disconnects) == 2

    # Each server logs its socket's end; the test database's flush must not race those writes.
    await wait_for(both_logged)
