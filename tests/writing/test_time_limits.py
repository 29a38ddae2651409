"""The writing page's clock over the socket: time left, "I'm still here", timing out at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from studyapp.participants.models import EventKind, Participation, ParticipationEvent, Status
from tests.writing.conftest import db, open_client, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_generations")]


def _age(participation, **minutes: int) -> None:
    now = timezone.now()
    fields = {f"{name}": now - timedelta(minutes=m) for name, m in minutes.items()}
    Participation.objects.filter(pk=participation.pk).update(**fields)


def _fresh(participation) -> Participation:
    return Participation.objects.get(pk=participation.pk)


async def test_the_state_says_how_long_each_limit_leaves(writer):
    await db(_age, writer, entered_at=60, acted_at=0)
    client, state = await open_client("demo", token_for(writer))
    await client.close()
    # demo: session 90 minutes, idle 30; warnings 10 and 5 minutes ahead.
    assert 29 * 60 < state["time_left"]["session_s"] <= 30 * 60
    assert 29 * 60 < state["time_left"]["idle_s"] <= 30 * 60
    assert state["time_warnings"] == {"session_s": 600, "idle_s": 300, "idle_limit_s": 1800}


async def test_opening_the_page_and_stay_count_as_actions_a_bare_heartbeat_does_not(writer):
    await db(_age, writer, entered_at=40, acted_at=27)
    client, _ = await open_client("demo", token_for(writer))  # a fresh page: an action
    await client.close()
    assert timezone.now() - (await db(_fresh, writer)).acted_at < timedelta(seconds=30)

    await db(_age, writer, acted_at=27)
    client, _ = await open_client("demo", token_for(writer), hello=False)
    await client.hello(last_seq=0)  # a reconnect is not the participant's doing
    await client.send({"type": "heartbeat", "focused": True})
    await client.send({"type": "time"})
    left = (await client.until_type("time_left"))[-1]
    assert left["idle_s"] < 4 * 60
    await client.send({"type": "heartbeat", "focused": True, "active": True})
    await client.send({"type": "time"})
    assert (await client.until_type("time_left"))[-1]["idle_s"] > 29 * 60

    await db(_age, writer, acted_at=27)
    await client.send({"type": "stay"})
    stay = (await client.until_type("time_left"))[-1]
    await client.close()
    assert stay["of"] == "stay"
    assert stay["idle_s"] > 29 * 60
    kinds = await db(
        lambda: list(
            ParticipationEvent.objects.filter(participation=writer).values_list("kind", flat=True)
        )
    )
    assert EventKind.STAY in kinds


async def test_a_page_past_a_limit_is_timed_out_now_and_told_where_to_go(writer):
    client, _ = await open_client("demo", token_for(writer))
    await _settled(client)
    await db(_age, writer, entered_at=91)
    error = await client.error({"type": "stay"})  # too late to stay
    await client.close()
    assert error["code"] == "not_writing"
    assert error["next_url"] == "/study/demo/done/"
    fresh = await db(_fresh, writer)
    assert (fresh.status, fresh.completion_code) == (Status.TIMED_OUT, "TIMEDOUT")


async def _settled(client) -> None:
    """The hello's presence write is stored: a heartbeat waits for it, and frames are answered
    in order."""
    await client.send({"type": "heartbeat"})
    await client.send({"type": "time"})
    await client.until_type("time_left")


async def test_an_idle_page_asking_the_time_is_timed_out(writer):
    client, _ = await open_client("demo", token_for(writer))
    await _settled(client)
    await db(_age, writer, acted_at=31)
    error = await client.error({"type": "time"})
    await client.close()
    assert (error["code"], error["of"]) == ("not_writing", "time")
    assert (await db(_fresh, writer)).status == Status.TIMED_OUT
