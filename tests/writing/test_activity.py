"""Presence: heartbeats, focus and blur update last seen, active time and focus losses."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from django.db import connection

from studyapp.participants.activity import (
    ACTIVE_GAP_CAP_S,
    active_increment,
    activity_record,
)
from studyapp.participants.models import EventKind, Participation, ParticipationEvent
from tests.writing.conftest import db, open_client, token_for


def test_active_time_counts_only_focused_gaps_and_caps_each_one():
    assert active_increment(since=100.0, now=110.0, focused=True) == 10.0
    assert active_increment(since=100.0, now=110.0, focused=False) == 0.0
    assert active_increment(since=None, now=110.0, focused=True) == 0.0
    # A laptop that slept for two hours with the tab focused earns one gap's worth.
    assert active_increment(since=0.0, now=7200.0, focused=True) == ACTIVE_GAP_CAP_S
    assert active_increment(since=10.0, now=5.0, focused=True) == 0.0


@pytest.mark.django_db
def test_heartbeats_move_counters_without_event_rows(writer):
    activity_record(participation_id=writer.pk, kind=EventKind.HEARTBEAT, active_delta=12.5)
    activity_record(participation_id=writer.pk, kind=EventKind.HEARTBEAT, active_delta=3.0)
    writer.refresh_from_db()
    assert writer.active_seconds == 15.5
    assert writer.last_seen_at is not None
    assert not ParticipationEvent.objects.filter(participation=writer).exists()


@pytest.mark.django_db
def test_blur_counts_a_focus_loss_and_logs_a_row(writer):
    activity_record(participation_id=writer.pk, kind=EventKind.BLUR, focus_lost=True)
    activity_record(participation_id=writer.pk, kind=EventKind.FOCUS)
    writer.refresh_from_db()
    assert writer.focus_losses == 1
    kinds = list(
        ParticipationEvent.objects.filter(participation=writer)
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == [EventKind.BLUR, EventKind.FOCUS]


@pytest.mark.django_db(transaction=True)  # autocommit, as in the database worker
def test_a_presence_report_is_one_statement(writer, django_assert_num_queries):
    with django_assert_num_queries(1):
        activity_record(participation_id=writer.pk, kind=EventKind.CONNECT, active_delta=2.0)
    with django_assert_num_queries(1):
        activity_record(participation_id=writer.pk, kind=EventKind.HEARTBEAT, focus_lost=True)
    writer.refresh_from_db()
    assert (writer.active_seconds, writer.focus_losses) == (2.0, 1)
    event = ParticipationEvent.objects.get(participation=writer)
    assert (event.kind, event.data) == (EventKind.CONNECT, {})
    assert event.at is not None


def _presence(participation) -> tuple[float, int, list[str]]:
    fresh = Participation.objects.get(pk=participation.pk)
    kinds = list(
        ParticipationEvent.objects.filter(participation=participation)
        .order_by("id")
        .values_list("kind", flat=True)
    )
    return fresh.active_seconds, fresh.focus_losses, kinds


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_generations")
async def test_socket_presence_frames(writer):
    client, _ = await open_client("demo", token_for(writer))  # hello says focused
    await asyncio.sleep(0.3)
    await client.send({"type": "heartbeat", "focused": True})
    await client.send({"type": "blur"})
    await asyncio.sleep(1.0)  # blurred: this gap must not count
    await client.send({"type": "heartbeat"})
    await client.send({"type": "blur"})  # a second blur in a row is not a second loss
    await client.send({"type": "focus"})
    await client.close()

    active, losses, kinds = await db(_presence, writer)
    # The focused 0.3 s counts (plus however long the frames took on a busy machine); the
    # blurred 1.0 s does not, so a total under 1.2 s could not have included it.
    assert 0.25 <= active < 1.2
    assert losses == 1
    assert kinds == [
        EventKind.CONNECT, EventKind.BLUR, EventKind.BLUR, EventKind.FOCUS, EventKind.DISCONNECT,
    ]  # fmt: skip
    seen = await db(lambda: Participation.objects.get(pk=writer.pk).last_seen_at)
    assert seen is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_generations")
async def test_a_reconnect_with_last_seq_is_logged_as_reconnect(writer):
    client, state = await open_client("demo", token_for(writer))
    await client.close()
    client, _ = await open_client("demo", token_for(writer), hello=False)
    await client.hello(last_seq=state["last_seq"])
    await client.close()
    _, _, kinds = await db(_presence, writer)
    assert kinds == [
        EventKind.CONNECT, EventKind.DISCONNECT, EventKind.RECONNECT, EventKind.DISCONNECT,
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_generations")
async def test_the_first_send_does_not_wait_for_the_hellos_write(writer):
    """The hello's presence write waits on a lock held elsewhere (as behind a busy database);
    the message sent after it starts its reply meanwhile, and the write is stored after."""
    holder = await psycopg.AsyncConnection.connect(**_conninfo())
    try:
        table = Participation._meta.db_table
        await holder.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", [writer.pk])  # noqa: S608
        client, _ = await open_client("demo", token_for(writer))
        await client.send({"type": "send", "text": "Help me write a short note"})
        await client.until_type("turn_start", wait_s=10)
        assert (await db(_presence, writer))[2] == []  # the hello's write is still waiting
    finally:
        await holder.rollback()
        await holder.close()
    frames = await client.until(lambda f: f["type"] == "turn_end")
    if not any(f["type"] == "ack" for f in frames):
        await client.until_type("ack")
    await client.close()
    _, _, kinds = await db(_presence, writer)
    assert kinds == [EventKind.CONNECT, EventKind.DISCONNECT]


def _conninfo() -> dict[str, object]:
    cfg = connection.settings_dict
    return {
        "dbname": cfg["NAME"],
        "user": cfg["USER"],
        "password": cfg["PASSWORD"] or None,
        "host": cfg["HOST"] or "127.0.0.1",
        "port": cfg["PORT"] or 5432,
        "autocommit": False,
    }
