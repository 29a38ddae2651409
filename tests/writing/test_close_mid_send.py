"""A socket that closes while the server sends it a frame still runs its disconnect path.

The page's tab may close at any moment, also between a frame it sent and the answer. Sending
that answer then fails; the consumer must end as after any close (no frame pump or Redis
watcher left behind) and log one line, not a traceback, for it or for the frames that follow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio as redis
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect

from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.realtime.framestore import RedisFrameStore
from studyapp.writing.models import Message, Role
from tests.writing.conftest import LiveServer, db, make_participation, token_for, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(
    django_db_setup, django_db_blocker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server, its output in a file (at INFO) so a test can read what it logged."""
    log = tmp_path_factory.mktemp("close-mid-send") / "server.log"
    live = LiveServer(tokens_per_second=400, log=log, log_level="INFO")
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


@pytest.fixture
async def watchers() -> AsyncIterator[object]:
    """The origins (server processes) that Redis says watch a participation's frames."""
    client = redis.from_url(settings.REDIS_URL)
    store = RedisFrameStore(settings.REDIS_URL)

    async def of(public_id: str) -> set[bytes]:
        return await client.smembers(store._keys(public_id)[3])

    yield of
    await client.aclose()


async def _open(server: LiveServer, participation) -> ClientConnection:
    url = f"{server.ws_url}/ws/study/demo/?token={token_for(participation)}"
    return await connect(url, origin=server.url, open_timeout=10)


async def _send_and_vanish(ws: ClientConnection, frame: dict) -> None:
    """Send ``frame`` and close the TCP connection at once, with no closing handshake."""
    await ws.send(json.dumps(frame))
    ws.transport.close()
    await asyncio.sleep(0)


def _log_since(server: LiveServer, offset: int) -> str:
    assert server.log is not None
    return server.log.read_bytes()[offset:].decode(errors="replace")


def _events(participation) -> list[str]:
    return list(
        ParticipationEvent.objects.filter(participation=participation)
        .order_by("id")
        .values_list("kind", flat=True)
    )


def _disconnected(participation) -> bool:
    return EventKind.DISCONNECT in _events(participation)


def _replied(participation) -> bool:
    return Message.objects.filter(participation=participation, role=Role.ASSISTANT).exists()


async def _until(check: Callable[[object], bool], participation, wait_s: float) -> None:
    async def checked() -> bool:
        return await db(check, participation)

    await wait_for(checked, wait_s=wait_s)


def _assert_quiet(log: str) -> None:
    assert "Traceback" not in log, log
    assert "ERROR" not in log, log
    assert "writing socket" in log  # the one line about the close


async def test_a_close_during_the_ack_leaves_no_watcher(server, watchers, demo_version):
    participation = await db(make_participation, demo_version)
    public_id = participation.public_id.hex
    offset = server.log.stat().st_size
    ws = await _open(server, participation)
    await ws.send(json.dumps({"type": "hello", "last_seq": None, "focused": True}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 15))["type"] == "state"
    assert await watchers(public_id)

    await _send_and_vanish(ws, {"type": "send", "text": "Help me write a short note"})

    # The reply streams on, and is stored, with no socket to send it to; the disconnect path
    # logs the close.
    await _until(_replied, participation, wait_s=20)
    await _until(_disconnected, participation, wait_s=10)
    assert await db(_events, participation) == [EventKind.CONNECT, EventKind.DISCONNECT]
    assert await watchers(public_id) == set()
    _assert_quiet(_log_since(server, offset))


async def test_a_close_during_the_state_leaves_no_watcher(server, watchers, demo_version):
    participation = await db(make_participation, demo_version)
    public_id = participation.public_id.hex
    offset = server.log.stat().st_size
    ws = await _open(server, participation)

    await _send_and_vanish(ws, {"type": "hello", "last_seq": None, "focused": True})

    async def unwatched() -> bool:
        return await watchers(public_id) == set()

    await wait_for(lambda: "writing socket" in _log_since(server, offset), wait_s=10)
    await wait_for(unwatched, wait_s=10)
    _assert_quiet(_log_since(server, offset))
