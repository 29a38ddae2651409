"""A ``send`` that arrives while Redis is away: a short outage is waited out, a longer one is
refused with ``retry_after`` (the page sends it again by itself under its id); never a
``server_error`` with a traceback, never a message stored twice.

Each test runs its own redis-server and stops it (the shared Redis is never touched).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from studyapp.writing.models import Message, Role
from tests.writing.conftest import db, open_client, token_for
from tests.writing.private_redis import PrivateRedis

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]


def _shutdown(server: PrivateRedis) -> None:
    assert server.proc is not None
    server.cli("SHUTDOWN", "NOSAVE")
    server.proc.wait(timeout=10)


def _user_messages(participation) -> list[tuple[int, str]]:
    rows = Message.objects.filter(participation=participation, role=Role.USER).order_by("turn")
    return [(m.turn, m.client_msg_id) for m in rows]


def _answer(frame) -> bool:
    return frame["type"] in ("ack", "error") and frame.get("of") == "send"


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_send_during_a_short_redis_outage_is_answered_without_a_resend(
    private_redis, writer, caplog
):
    client, _ = await open_client("demo", token_for(writer))
    await client.send({"type": "send", "text": "Help me with Portugal", "client_msg_id": "m-1"})
    await client.until(lambda f: f["type"] == "turn_end" and f["turn"] == 1, wait_s=10)

    _shutdown(private_redis)
    await client.send({"type": "send", "text": "Make it shorter", "client_msg_id": "m-2"})
    await asyncio.sleep(1.5)  # the send waits for Redis
    private_redis.start()
    frames = await client.until(_answer, wait_s=15)
    assert frames[-1]["type"] == "ack", frames[-1]
    assert (frames[-1]["turn"], frames[-1]["duplicate"]) == (2, False)
    await client.until(lambda f: f["type"] == "turn_end" and f.get("turn") == 2, wait_s=15)
    assert await db(_user_messages, writer) == [(1, "m-1"), (2, "m-2")]
    assert _errors(caplog) == []
    await client.close()


async def test_a_send_refused_while_redis_stays_away_carries_retry_after(
    private_redis, writer, settings, caplog
):
    settings.SEND_REDIS_WAIT_S = 1
    client, _ = await open_client("demo", token_for(writer))
    _shutdown(private_redis)
    send = {"type": "send", "text": "Help me with Portugal", "client_msg_id": "m-1"}
    await client.send(send)
    refusal = (await client.until(_answer, wait_s=5))[-1]  # within the 1 s wait
    assert (refusal["type"], refusal["code"]) == ("error", "unavailable")
    assert refusal["retry_after"] > 0
    assert await db(_user_messages, writer) == []  # nothing stored: the page sends it again

    private_redis.start()
    await client.send(send)  # the page's own resend, under the same id
    ack = (await client.until(_answer, wait_s=15))[-1]
    assert (ack["type"], ack["turn"], ack["duplicate"]) == ("ack", 1, False)
    await client.until(lambda f: f["type"] == "turn_end", wait_s=15)
    assert await db(_user_messages, writer) == [(1, "m-1")]
    assert _errors(caplog) == []
    await client.close()
