"""Replies whose server process died, or that a stopping server cut: stored as failed turns and
ended with ``turn_error`` (Retry) on every socket, once, by whichever process notices.

A dead process is played by what it leaves in Redis: a generation begun and streamed a little
whose marker then expires (its TTL shortened here).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any

import pytest

from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.realtime import framestore, generations
from studyapp.realtime.framestore import frame_store
from studyapp.writing import relay
from studyapp.writing.lost import LOST_ERROR, lost_sweep_once
from studyapp.writing.models import Message, Role
from studyapp.writing.services import message_send
from tests.writing.conftest import (
    db,
    make_participation,
    open_client,
    study_version,
    token_for,
    wait_for,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]

PARTIAL = ["Budget travel ", "starts with "]


def _replies(participation) -> list[Message]:
    return list(
        Message.objects.filter(participation=participation, role=Role.ASSISTANT).order_by("id")
    )


def _events(participation, kind: EventKind) -> list[ParticipationEvent]:
    return list(ParticipationEvent.objects.filter(participation=participation, kind=kind))


async def _orphan(
    participation,
    monkeypatch,
    *,
    stored: bool = True,
    start: dict[str, Any] | None = None,
    deltas: list[dict[str, Any]] | None = None,
    ttl_s: int = 1,
) -> str:
    """A reply begun by a process that then died, leaving its generation in the store; its
    marker lives one second. ``stored``: the user message of turn 1 is stored here first;
    ``start`` adds to (or changes) the start frame and its marker says its ``kind``."""
    if stored:
        await db(
            message_send, participation_id=participation.pk, text="Hi there", client_msg_id="m1"
        )
    key, generation_id = participation.public_id.hex, str(uuid.uuid4())
    first = {"type": "turn_start", "turn": 1, "user_text": "Hi there", **(start or {})}
    marker = {"generation_id": generation_id, "turn": 1, "origin": "12345-deadbeef"}
    kinds = {"pair_start": "pair", "turn_start": "regenerate" if first.get("regenerate") else ""}
    if kinds[first["type"]]:
        marker["kind"] = kinds[first["type"]]
    frames = deltas or [{"type": "delta", "text": t} for t in PARTIAL]
    with monkeypatch.context() as patch:
        patch.setattr(framestore, "GENERATION_TTL_S", ttl_s)
        await frame_store().begin(key, marker, {**first, "generation_id": generation_id})
        await frame_store().append(key, frames)
    return generation_id


async def _expired(participation) -> None:
    await wait_for(functools.partial(_no_marker, participation.public_id.hex), wait_s=5)


async def _no_marker(key: str) -> bool:
    return await frame_store().generation(key) is None


async def _assert_stored_failed_once(participation, generation_id: str) -> Message:
    replies = await db(_replies, participation)
    (failed,) = [m for m in replies if str(m.generation_id) == generation_id]
    assert (failed.is_active, failed.finish_reason, failed.turn) == (False, "error", 1)
    assert failed.error == LOST_ERROR
    assert failed.text == "".join(PARTIAL)
    (event,) = await db(_events, participation, EventKind.MODEL_ERROR)
    assert event.data["generation_id"] == generation_id
    assert event.data["permanent"] is False
    return failed


async def test_stop_on_a_reply_whose_process_died_ends_it_for_retry(writer, monkeypatch):
    generation_id = await _orphan(writer, monkeypatch)
    client, state = await open_client("demo", token_for(writer))
    assert state["generation"]["generation_id"] == generation_id  # the page shows it streaming
    await client.until_type("delta")
    await _expired(writer)

    await client.send({"type": "stop"})
    frames = await client.until(lambda f: f["type"] in ("turn_error", "error"))
    end = frames[-1]
    assert end["type"] == "turn_error", end  # not a silent not_generating
    assert (end["generation_id"], end["turn"], end["retry"]) == (generation_id, 1, True)
    await _assert_stored_failed_once(writer, generation_id)

    await client.send({"type": "retry"})
    frames = await client.until(lambda f: f["type"] in ("turn_end", "turn_error"))
    assert frames[0] == {"type": "ack", "of": "retry", "turn": 1}
    assert frames[-1]["type"] == "turn_end"
    replies = await db(_replies, writer)
    assert [r.is_active for r in replies] == [False, True]
    await client.close()


async def test_a_dead_reply_ends_once_on_every_watching_socket(writer, monkeypatch):
    generation_id = await _orphan(writer, monkeypatch)
    first, _ = await open_client("demo", token_for(writer))
    second, _ = await open_client("demo", token_for(writer))
    await _expired(writer)

    # Sweeps of two processes and a stop, at once: one of them resolves it.
    resolved = await asyncio.gather(
        lost_sweep_once(), lost_sweep_once(), relay.generation_lost_resolve(writer.public_id.hex)
    )
    assert sorted(int(r) for r in resolved) == [0, 0, 1]
    for client in (first, second):
        end = (await client.until_type("turn_error"))[-1]
        assert (end["generation_id"], end["retry"]) == (generation_id, True)
        assert await client.comm.receive_nothing(timeout=0.5)  # one end, not two
    await _assert_stored_failed_once(writer, generation_id)
    assert await lost_sweep_once() == 0  # nothing left to resolve
    for client in (first, second):
        await client.close()


async def test_retry_records_the_dead_reply_before_it_starts_anew(writer, monkeypatch):
    generation_id = await _orphan(writer, monkeypatch)
    await _expired(writer)
    client, state = await open_client("demo", token_for(writer))
    assert state["generation"] is None
    assert state["retry_turn"] == 1

    await client.send({"type": "retry"})
    frames = await client.until_type("turn_end")
    kinds = [f["type"] for f in frames]
    assert kinds.index("turn_error") < kinds.index("turn_start")
    await _assert_stored_failed_once(writer, generation_id)
    assert [r.is_active for r in await db(_replies, writer)] == [False, True]
    await client.close()


async def test_a_dead_reply_whose_message_was_never_stored_is_withdrawn(writer, monkeypatch):
    generation_id = await _orphan(writer, monkeypatch, stored=False)
    client, _ = await open_client("demo", token_for(writer))
    await _expired(writer)
    assert await relay.generation_lost_resolve(writer.public_id.hex)
    end = (await client.until_type("turn_withdrawn"))[-1]
    assert end["generation_id"] == generation_id
    assert await db(_replies, writer) == []
    await client.close()


async def test_a_stopping_server_ends_its_replies_as_retryable_failures(writer, settings):
    settings.OFFLINE_TOKENS_PER_SECOND = 20
    client, _ = await open_client("demo", token_for(writer))
    await client.send({"type": "send", "text": "Write a long story about a lighthouse"})
    await client.until_type("delta")

    await generations.generations_drain(0.2)
    end = (await client.until(lambda f: f["type"] in ("turn_end", "turn_error")))[-1]
    assert end["type"] == "turn_error"
    assert end["retry"] is True
    assert await _no_marker(writer.public_id.hex)
    (failed,) = await db(_replies, writer)
    assert (failed.is_active, failed.finish_reason) == (False, "error")
    assert "server stopped" in failed.error
    assert await db(_events, writer, EventKind.MODEL_ERROR)

    settings.OFFLINE_TOKENS_PER_SECOND = 400
    await client.send({"type": "retry"})
    assert (await client.until(lambda f: f["type"] in ("turn_end", "turn_error")))[-1][
        "type"
    ] == "turn_end"
    await client.close()


async def test_a_dead_regeneration_fails_and_keeps_the_earlier_reply(writer, monkeypatch):
    client, _ = await open_client("demo", token_for(writer))
    old = (await client.turn("Hi there"))[-1]
    regenerate = {"regenerate": True, "replaces": old["generation_id"]}
    generation_id = await _orphan(writer, monkeypatch, stored=False, start=regenerate)
    await _expired(writer)

    assert await relay.generation_lost_resolve(writer.public_id.hex)
    end = (await client.until_type("turn_error"))[-1]
    assert (end["generation_id"], end["regenerate"], end["retry"]) == (generation_id, True, False)
    assert end["kept"] == old["generation_id"]
    kept, lost = await db(_replies, writer)
    assert (str(kept.generation_id), kept.is_active) == (old["generation_id"], True)
    assert (str(lost.generation_id), lost.is_active, lost.error) == (
        generation_id, False, LOST_ERROR
    )  # fmt: skip
    await client.close()


async def test_a_dead_side_by_side_pair_fails_as_a_pair(monkeypatch):
    version = await db(study_version, "side_by_side: {turns: [1]}")
    participation = await db(make_participation, version)
    candidates = [{"candidate": i, "generation_id": str(uuid.uuid4())} for i in range(2)]
    texts = ["Left draft", "Right draft"]
    deltas = [{"type": "delta", "candidate": i, "text": t} for i, t in enumerate(texts)]
    start = {"type": "pair_start", "candidates": candidates}
    pair_id = await _orphan(participation, monkeypatch, start=start, deltas=deltas)
    client, _ = await open_client("pairs", token_for(participation))
    await _expired(participation)

    assert await relay.generation_lost_resolve(participation.public_id.hex)
    end = (await client.until_type("turn_error"))[-1]
    assert (end["generation_id"], end["retry"]) == (pair_id, True)
    stored = await db(_replies, participation)
    assert [(m.text, m.is_active, m.error) for m in stored] == [
        (text, False, LOST_ERROR) for text in texts
    ]
    assert [str(m.generation_id) for m in stored] == [c["generation_id"] for c in candidates]

    await client.send({"type": "retry"})
    assert [f["type"] for f in await client.until_type("pair_end")][:2] == ["ack", "pair_start"]
    await client.close()


async def test_a_resend_of_a_message_whose_early_reply_died_unstored_gets_its_reply(
    writer, monkeypatch
):
    """The killed process began the message's reply early and died before storing it: the
    survivor refuses the page's resend ``busy`` with ``retry_after`` while the dead reply's
    marker lives, and once it expired the same resend is stored and answered."""
    client, _ = await open_client("demo", token_for(writer))
    await _orphan(writer, monkeypatch, stored=False, ttl_s=4)
    send = {"type": "send", "text": "Hi there", "client_msg_id": "m1"}
    await client.send(send)
    refusal = (await client.until(lambda f: f.get("of") == "send"))[-1]
    assert (refusal["type"], refusal["code"]) == ("error", "busy")
    assert refusal["retry_after"] > 0
    await wait_for(functools.partial(_no_marker, writer.public_id.hex), wait_s=10)
    await client.send(send)  # the page's own resend, after retry_after
    ack = (await client.until(lambda f: f.get("of") == "send"))[-1]
    assert (ack["type"], ack["turn"], ack["duplicate"]) == ("ack", 1, False)
    await client.until_type("turn_end", wait_s=15)
    users = await db(lambda: list(Message.objects.filter(participation=writer, role=Role.USER)))
    assert [(m.turn, m.client_msg_id) for m in users] == [(1, "m1")]
    await client.close()
