"""Opening the writing socket is limited per client address (SOCKET_RATE_LIMIT).

A refused handshake is accepted, told ``rate_limited`` with ``retry_after``, and closed with
4429 (docs/protocol.md §1), before the database is asked anything; other addresses connect.
"""

from __future__ import annotations

import json
import secrets

import pytest
from channels.testing.websocket import WebsocketCommunicator

from studyapp.asgi import application
from studyapp.writing.protocol import CLOSE_RATE_LIMITED
from tests.writing.conftest import ORIGIN, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]


def _address() -> str:
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


async def _connect(token: str, address: str) -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(
        application, f"/ws/study/demo/?token={token}", headers=[(b"origin", ORIGIN)]
    )
    communicator.scope["client"] = (address, 50000)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    await communicator.send_to(text_data=json.dumps({"type": "hello", "last_seq": None}))
    return communicator, json.loads(await communicator.receive_from(timeout=10))


@pytest.fixture
def limited(settings):
    settings.RATELIMIT_ENABLE = True
    settings.SOCKET_RATE_LIMIT = "3/m"


async def test_sockets_past_the_limit_from_one_address_are_refused(limited, writer):
    token, address = token_for(writer), _address()
    for _ in range(3):
        communicator, state = await _connect(token, address)
        assert state["type"] == "state"
        await communicator.disconnect()

    communicator, frame = await _connect(token, address)
    assert frame["code"] == "rate_limited"
    assert 1 <= frame["retry_after"] <= 60
    closed = await communicator.receive_output(timeout=5)
    assert (closed["type"], closed["code"]) == ("websocket.close", CLOSE_RATE_LIMITED)
    await communicator.wait()

    other, state = await _connect(token, _address())
    assert state["type"] == "state"
    await other.disconnect()


async def test_an_ipv6_address_counts_by_its_64_prefix(limited, writer):
    token, prefix = token_for(writer), f"2001:db8:{secrets.randbelow(65535):x}:1"
    for host in range(3):
        communicator, state = await _connect(token, f"{prefix}::{host + 1}")
        assert state["type"] == "state"
        await communicator.disconnect()
    communicator, frame = await _connect(token, f"{prefix}::99")
    assert frame["code"] == "rate_limited"
    await communicator.disconnect()


async def test_without_limits_an_address_connects_as_often_as_it_likes(settings, writer):
    settings.RATELIMIT_ENABLE = False
    settings.SOCKET_RATE_LIMIT = "1/m"
    token, address = token_for(writer), _address()
    for _ in range(3):
        communicator, state = await _connect(token, address)
        assert state["type"] == "state"
        await communicator.disconnect()
