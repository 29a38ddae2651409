"""A ``send`` that arrives while Redis is away: a short outage is waited out, a longer one is
refused with ``retry_after`` (the page sends it again by itself under its id); never a
``server_error`` with a traceback, never a message stored twice, and the model asked once
however many times the send tries Redis. A message stored just before Redis went away, whose
reply could not start, gets that reply on its resend, and only once.

Each test runs its own redis-server and stops it (the shared Redis is never touched).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

import psycopg
import pytest
from django.db import connection

from studyapp.participants.models import EventKind, Participation, ParticipationEvent
from studyapp.realtime import framebus
from studyapp.studies.services import study_load
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.conftest import REFERENCE_STUDY
from tests.writing.conftest import (
    db,
    open_client,
    remote_participation,
    token_for,
    wait_for,
)
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


def _replies(participation) -> list[tuple[int, str]]:
    rows = Message.objects.filter(participation=participation, role=Role.ASSISTANT)
    return [(m.turn, m.text) for m in rows.order_by("id")]


def _answer(frame) -> bool:
    return frame["type"] in ("ack", "error") and frame.get("of") == "send"


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.fixture
def quick_subscription(monkeypatch):
    """The bus waits for its Redis subscription a fraction of a second instead of 10 s, so
    that a send's wait for Redis holds several tries, as the 12 s wait does in production."""
    monkeypatch.setattr(framebus, "READY_TIMEOUT_S", 0.3)


async def _remote_client(version, fake: FakeVLLM):
    """A socket of a participation whose arm is ``fake``: its requests are counted."""
    participation = await db(remote_participation, version, fake.url)
    client, _ = await open_client("demo", token_for(participation))
    return participation, client


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


@pytest.mark.usefixtures("quick_subscription")
async def test_a_send_that_waits_out_redis_asks_the_model_once(
    private_redis, fake_vllm, demo_version, caplog
):
    fake_vllm.script(Script(text="A shorter one"))
    participation, client = await _remote_client(demo_version, fake_vllm)
    _shutdown(private_redis)
    await client.send({"type": "send", "text": "Make it shorter", "client_msg_id": "m-1"})
    await asyncio.sleep(1.5)  # the send tries Redis again and again meanwhile
    private_redis.start()
    ack = (await client.until(_answer, wait_s=15))[-1]
    assert (ack["type"], ack["turn"], ack["duplicate"]) == ("ack", 1, False)
    end = (await client.until(lambda f: f["type"] == "turn_end", wait_s=15))[-1]
    assert end["text"] == "A shorter one"
    # The call opened when the send arrived is the one the reply streamed: none was reopened.
    assert len(fake_vllm.chat_requests()) == 1
    assert fake_vllm.disconnects == 0
    assert await db(_user_messages, participation) == [(1, "m-1")]
    assert _errors(caplog) == []
    await client.close()


@pytest.mark.usefixtures("quick_subscription")
async def test_a_send_refused_while_redis_stays_away_asked_the_model_once(
    private_redis, fake_vllm, demo_version, settings, caplog
):
    settings.SEND_REDIS_WAIT_S = 2
    # The first request is answered slowly: only the send's giving up can close it.
    fake_vllm.script(Script(text="Never shown", first_token_delay=10), Script(text="The reply"))
    participation, client = await _remote_client(demo_version, fake_vllm)
    _shutdown(private_redis)
    send = {"type": "send", "text": "Help me with Portugal", "client_msg_id": "m-1"}
    await client.send(send)
    refusal = (await client.until(_answer, wait_s=10))[-1]
    assert (refusal["type"], refusal["code"]) == ("error", "unavailable")
    assert refusal["retry_after"] > 0
    # One request for the whole wait, closed once when the send gave up.
    assert len(fake_vllm.chat_requests()) == 1
    assert await fake_vllm.wait_for(lambda: fake_vllm.disconnects == 1)
    assert await db(_user_messages, participation) == []

    private_redis.start()
    settings.SEND_REDIS_WAIT_S = 12
    await client.send(send)  # the page's own resend, under the same id
    ack = (await client.until(_answer, wait_s=15))[-1]
    assert (ack["type"], ack["turn"], ack["duplicate"]) == ("ack", 1, False)
    end = (await client.until(lambda f: f["type"] == "turn_end", wait_s=15))[-1]
    assert end["text"] == "The reply"
    assert len(fake_vllm.chat_requests()) == 2
    assert _errors(caplog) == []
    await client.close()


# The socket cannot guess the model's context when it holds the document: no early reply, so
# the reply starts only once the message is stored.
DOCUMENT_STUDY = REFERENCE_STUDY.read_text().replace(
    "model_context: chat\n", "model_context: chat+task+document\n"
)


@contextlib.asynccontextmanager
async def _row_locked(participation) -> AsyncIterator[None]:
    """Hold the participation's row lock (as a busy transaction would) until the block ends."""
    cfg = connection.settings_dict
    holder = await psycopg.AsyncConnection.connect(
        dbname=cfg["NAME"], user=cfg["USER"], password=cfg["PASSWORD"] or None,
        host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, autocommit=False,
    )  # fmt: skip
    try:
        table = Participation._meta.db_table
        await holder.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", [participation.pk])  # noqa: S608
        yield
    finally:
        await holder.rollback()
        await holder.close()


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def _connected(participation) -> bool:
    events = ParticipationEvent.objects.filter(participation=participation)
    return events.filter(kind=EventKind.CONNECT).exists()


async def test_a_message_stored_as_redis_went_away_is_answered_once_on_its_resend(
    private_redis, fake_vllm, settings, caplog
):
    settings.SEND_REDIS_WAIT_S = 1
    # Slow enough that the second resend comes while the reply is in flight.
    fake_vllm.script(Script(text="The reply", first_token_delay=1))
    version = await db(lambda: study_load(text=DOCUMENT_STUDY, slug="doc", offline=True).version)
    participation = await db(remote_participation, version, fake_vllm.url)
    client, _ = await open_client("doc", token_for(participation))
    # The hello's presence write is stored: the only lock waited for below is the send's.
    await wait_for(functools.partial(db, _connected, participation))
    send = {"type": "send", "text": "Help me with Portugal", "client_msg_id": "m-1"}

    # Redis answers the send's checks, then goes away while the database stores the message.
    async with _row_locked(participation):
        await client.send(send)
        await wait_for(functools.partial(db, _lock_waiters))
        _shutdown(private_redis)
    refusal = (await client.until(_answer, wait_s=15))[-1]
    assert (refusal["type"], refusal["code"]) == ("error", "unavailable"), refusal
    assert refusal["retry_after"] > 0
    assert await db(_user_messages, participation) == [(1, "m-1")]
    assert await db(_replies, participation) == []
    assert fake_vllm.chat_requests() == []

    private_redis.start()
    settings.SEND_REDIS_WAIT_S = 12
    await client.send(send)  # the page's own resend, under the same id
    ack = (await client.until(_answer, wait_s=15))[-1]
    assert (ack["type"], ack["turn"], ack["duplicate"]) == ("ack", 1, True), ack
    await client.send(send)  # again, while that reply streams: acknowledged, not answered
    ack = (await client.until(_answer, wait_s=15))[-1]
    assert (ack["type"], ack["turn"], ack["duplicate"]) == ("ack", 1, True), ack
    end = (await client.until(lambda f: f["type"] == "turn_end", wait_s=15))[-1]
    assert (end["turn"], end["text"]) == (1, "The reply")

    await client.send(send)  # and once it is answered
    ack = (await client.until(_answer, wait_s=15))[-1]
    assert (ack["type"], ack["turn"], ack["duplicate"]) == ("ack", 1, True), ack
    await client.send({"type": "time"})
    await client.until_type("time_left")
    # One reply began (a resync after the restart may show its start again, not another).
    starts = {(f["turn"], f["generation_id"]) for f in client.frames if f["type"] == "turn_start"}
    assert len(starts) == 1
    assert len(fake_vllm.chat_requests()) == 1
    assert await db(_user_messages, participation) == [(1, "m-1")]
    assert await db(_replies, participation) == [(1, "The reply")]
    assert _errors(caplog) == []
    await client.close()
