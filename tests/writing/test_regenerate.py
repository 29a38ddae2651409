"""Regenerate over the socket: a new sample replaces the latest reply, the old one is kept."""

from __future__ import annotations

import asyncio

import pytest

from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import Script
from tests.writing.conftest import (
    db,
    make_participation,
    open_client,
    remote_participation,
    study_version,
    token_for,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]

ENDS = ("turn_end", "turn_error")


def _replies(participation, turn: int) -> list[Message]:
    return list(
        Message.objects.filter(participation=participation, turn=turn, role=Role.ASSISTANT)
        .order_by("id")
    )


async def _regenerate(client, turn: int):
    await client.send({"type": "regenerate", "turn": turn})
    return await client.until(lambda f: f["type"] in ENDS)


async def test_regenerate_replaces_the_reply_and_the_next_turn_sees_the_new_one(fake_vllm):
    fake_vllm.script(
        Script(text="The first draft"), Script(text="A fresher draft"), Script(text="Shorter now")
    )
    version = await db(study_version)
    participation = await db(remote_participation, version, fake_vllm.url)
    client, state = await open_client("pairs", token_for(participation))
    assert state["regenerate"] is None
    assert state["max_regenerations"] == 2
    old = (await client.turn("Help me write about a weekend in Lisbon"))[-1]

    frames = await _regenerate(client, 1)
    assert frames[0] == {"type": "ack", "of": "regenerate", "turn": 1}
    start = frames[1]
    assert start["type"] == "turn_start"
    assert (start["regenerate"], start["replaces"], start["turn"]) == (
        True, old["generation_id"], 1,
    )  # fmt: skip
    end = frames[-1]
    assert end["type"] == "turn_end"
    assert end["regenerate"] is True
    assert end["text"] == "A fresher draft"
    assert end["regenerations_left"] == 1
    assert not any(f["type"] == "rating_due" for f in frames)
    # The new sample saw the same context: the user's message, not the discarded reply.
    asked = fake_vllm.chat_requests()[-1].body["messages"]
    assert [m["role"] for m in asked] == ["user"]

    first, second = await db(_replies, participation, 1)
    assert (first.text, first.is_active, first.chosen) == ("The first draft", False, None)
    assert (second.text, second.is_active, second.chosen) == ("A fresher draft", True, None)
    assert first.alternative_group == second.alternative_group is not None
    event = await db(
        lambda: ParticipationEvent.objects.get(
            participation=participation, kind=EventKind.REGENERATE
        )
    )
    assert event.data["replaces"] == old["generation_id"]
    assert event.data["replaced"] is True

    # The socket's early model call for the next message expects the new reply too (one
    # request per generation: none was opened with a stale history and thrown away).
    frames = await client.turn("Shorter please")
    assert frames[-1]["turn"] == 2
    assert len(fake_vllm.chat_requests()) == 3
    history = fake_vllm.chat_requests()[-1].body["messages"]
    assert [m["content"] for m in history] == [
        "Help me write about a weekend in Lisbon", "A fresher draft", "Shorter please",
    ]  # fmt: skip

    await client.close()
    client, state = await open_client("pairs", token_for(participation))
    assert state["turns_completed"] == 2  # a regeneration is not a turn
    assert state["messages"][1]["text"] == "A fresher draft"
    assert state["regenerate"] == {"turn": 2, "left": 2}
    await client.close()


async def test_regenerations_are_limited_per_reply(writer_pairs):
    client, _ = await open_client("pairs", token_for(writer_pairs))
    await client.turn("Help me write a story about a lighthouse keeper")
    texts = {(await db(_replies, writer_pairs, 1))[0].text}
    for left in (1, 0):
        end = (await _regenerate(client, 1))[-1]
        assert end["type"] == "turn_end"
        assert end["regenerations_left"] == left
        texts.add(end["text"])
    assert len(texts) >= 2  # new seeds, new replies (tests/collab_models: rarely the same)
    before = await db(lambda: [(m.pk, m.is_active) for m in _replies(writer_pairs, 1)])
    refused = await client.error({"type": "regenerate", "turn": 1})
    assert refused["code"] == "regenerate_limit"
    assert refused["of"] == "regenerate"
    assert await db(lambda: [(m.pk, m.is_active) for m in _replies(writer_pairs, 1)]) == before
    # The next reply has its own allowance.
    await client.turn("Make the keeper older")
    assert (await _regenerate(client, 2))[-1]["regenerations_left"] == 1
    await client.close()


async def test_bad_regenerations_are_refused_and_change_nothing(writer_pairs, settings):
    client, _ = await open_client("pairs", token_for(writer_pairs))
    assert (await client.error({"type": "regenerate", "turn": 1}))["code"] == (
        "nothing_to_regenerate"
    )
    assert (await client.error({"type": "regenerate"}))["field"] == "turn"
    await client.turn("One, about budget travel")
    await client.turn("Two, about budget travel")
    stale = await client.error({"type": "regenerate", "turn": 1})
    assert stale["code"] == "not_regenerable"
    await client.turn("Three, about budget travel")
    await client.until_type("rating_due")
    due = await client.error({"type": "regenerate", "turn": 3})
    assert due["code"] == "rating_required"
    await client.send({"type": "rate", "turn": 3, "value": 6})
    await client.until_type("ack")
    # Rated: the checkpoint's reply may now be regenerated, and no new rating is asked for.
    frames = await _regenerate(client, 3)
    assert frames[-1]["type"] == "turn_end"
    settings.OFFLINE_TOKENS_PER_SECOND = 40
    await client.send({"type": "regenerate", "turn": 3})
    await client.until_type("delta")
    busy = await client.error({"type": "regenerate", "turn": 3})
    assert busy["code"] == "busy"
    await client.send({"type": "stop"})
    end = (await client.until(lambda f: f["type"] in ENDS))[-1]
    assert end["type"] == "turn_end"
    assert end["finish_reason"] == "cancelled"
    await client.close()
    client, state = await open_client("pairs", token_for(writer_pairs))
    assert state["rating_due"] is None
    assert state["turns_completed"] == 3
    assert state["messages"][-1]["text"] == end["text"]
    assert await db(lambda: Message.objects.filter(participation=writer_pairs,
                                                   role=Role.USER).count()) == 3  # fmt: skip
    await client.close()


async def test_a_failed_regeneration_keeps_the_old_reply(fake_vllm):
    fake_vllm.script(Script(text="The reply to keep"), Script(status=503))
    version = await db(study_version)
    participation = await db(remote_participation, version, fake_vllm.url)
    client, _ = await open_client("pairs", token_for(participation))
    old = (await client.turn("Help me write about a weekend in Lisbon"))[-1]
    end = (await _regenerate(client, 1))[-1]
    assert end["type"] == "turn_error"
    assert (end["regenerate"], end["retry"], end["kept"]) == (True, False, old["generation_id"])
    assert end["regenerations_left"] == 2  # a failure used nothing up
    kept, failed = await db(_replies, participation, 1)
    assert (kept.is_active, failed.is_active, bool(failed.error)) == (True, False, True)
    await client.close()
    client, state = await open_client("pairs", token_for(participation))
    assert state["messages"][-1]["text"] == "The reply to keep"
    assert state["retry_turn"] is None
    assert state["regenerate"] == {"turn": 1, "left": 2}
    await client.close()


async def test_a_reload_mid_regeneration_replays_it(writer_pairs, settings):
    client, _ = await open_client("pairs", token_for(writer_pairs))
    old = (await client.turn("Help me write about cooking at home"))[-1]
    settings.OFFLINE_TOKENS_PER_SECOND = 60
    await client.send({"type": "regenerate", "turn": 1})
    seen = await client.until_type("delta")
    fresh, state = await open_client("pairs", token_for(writer_pairs))
    # The old reply is still the turn's reply; the new one streams over it from its start.
    assert state["messages"][-1]["generation_id"] == old["generation_id"]
    assert state["generation"]["kind"] == "regenerate"
    assert state["generation"]["replaces"] == old["generation_id"]
    replayed = await fresh.until(lambda f: f["type"] in ENDS)
    assert replayed[0]["type"] == "turn_start"
    assert replayed[0]["regenerate"] is True
    end = replayed[-1]
    assert end["type"] == "turn_end"
    assert "".join(f["text"] for f in replayed if f["type"] == "delta") == end["text"]
    rest = await client.until(lambda f: f["type"] in ENDS)
    assert "".join(f["text"] for f in seen + rest if f["type"] == "delta") == end["text"]
    await fresh.close()
    await client.close()


async def test_a_message_sent_while_a_regeneration_streams_is_refused_and_not_stored(
    writer_pairs, settings
):
    client, _ = await open_client("pairs", token_for(writer_pairs))
    await client.turn("Help me write about cooking at home")
    settings.OFFLINE_TOKENS_PER_SECOND = 40
    await client.send({"type": "regenerate", "turn": 1})
    await client.until_type("delta")
    busy = await client.error({"type": "send", "text": "Next one", "client_msg_id": "x2"})
    assert busy["code"] == "busy"
    end = (await client.until(lambda f: f["type"] in ENDS))[-1]
    assert end["type"] == "turn_end"
    users = await db(
        lambda: list(
            Message.objects.filter(participation=writer_pairs, role=Role.USER).values_list(
                "turn", "text"
            )
        )
    )
    assert users == [(1, "Help me write about cooking at home")]
    await client.close()
    client, state = await open_client("pairs", token_for(writer_pairs))
    assert state["retry_turn"] is None
    await client.close()


@pytest.fixture
def writer_pairs(db):
    return make_participation(study_version())


async def test_regenerate_right_after_turn_end_is_not_busy_while_the_end_is_being_stored(
    fake_vllm, monkeypatch
):
    """A page that answers turn_end at once must not be told the reply it has just seen end
    is still in flight: the end reaches the socket only once the store holds it and has cleared
    the marker (studyapp/realtime/framebus.py), however long that write takes."""
    from studyapp.realtime.framestore import frame_store

    store = frame_store()
    real_end = store.lease_end

    async def slow_end(*args, **kwargs):
        await asyncio.sleep(0.3)  # the end's write still in flight when the page answers
        return await real_end(*args, **kwargs)

    monkeypatch.setattr(store, "lease_end", slow_end)
    fake_vllm.script(Script(text="The first draft"), Script(text="A fresher draft"))
    version = await db(study_version)
    participation = await db(remote_participation, version, fake_vllm.url)
    client, _ = await open_client("pairs", token_for(participation))
    await client.turn("Help me write about a weekend in Lisbon")

    await client.send({"type": "regenerate", "turn": 1})
    answer = (await client.until(lambda f: f["type"] in ("ack", "error")))[-1]
    assert answer == {"type": "ack", "of": "regenerate", "turn": 1}  # not {"code": "busy", ...}
    assert (await client.until(lambda f: f["type"] in ENDS))[-1]["text"] == "A fresher draft"
