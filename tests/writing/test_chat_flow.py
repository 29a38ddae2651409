"""The chat over the socket: a turn end to end, its record, ratings, stop, resends, documents."""

from __future__ import annotations

import pytest

from studyapp.feedback.models import Rating, Scale
from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.writing.models import DocumentVersion, EditBatch, Message, Role
from tests.writing.conftest import db, open_client, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]


def _messages(participation):
    return list(Message.objects.filter(participation=participation).order_by("turn", "id"))


async def test_state_frame_describes_an_empty_chat(writer):
    client, state = await open_client("demo", token_for(writer))
    assert state["protocol"] == "v1"
    assert state["messages"] == []
    assert state["generation"] is None
    assert state["retry_turn"] is None
    assert state["rating_due"] is None
    assert state["turns_completed"] == 0
    assert state["min_turns"] == 8
    assert state["max_turns"] == 30
    assert state["rating_scale"]["min"] == 1
    assert state["rating_scale"]["max"] == 10
    assert state["document"] == {"text": "", "version": 0}
    assert isinstance(state["last_seq"], int)
    await client.close()


async def test_a_turn_streams_in_numbered_frames_and_is_stored_once(writer):
    client, state = await open_client("demo", token_for(writer))
    frames = await client.turn("Help me write about budget travel in Portugal", "m-1")
    # The reply begins while the message is stored: the ack comes once it is.
    acks = [f for f in frames if f["type"] == "ack"]
    assert [(a["turn"], a["client_msg_id"]) for a in acks] == [(1, "m-1")]
    frames = [f for f in frames if f["type"] != "ack"]
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "turn_start"
    assert kinds[-1] == "turn_end"
    assert kinds.count("delta") >= 1
    numbered = [f for f in frames if "seq" in f]
    seqs = [f["seq"] for f in numbered]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gaps, no duplicates
    assert seqs[0] > state["last_seq"]
    end = frames[-1]
    streamed = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert end["text"] == streamed
    assert end["finish_reason"] == "stop"

    messages = await db(_messages, writer)
    assert [(m.turn, m.role) for m in messages] == [(1, Role.USER), (1, Role.ASSISTANT)]
    user, reply = messages
    assert user.text == "Help me write about budget travel in Portugal"
    assert user.client_msg_id == "m-1"
    assert reply.text == end["text"]
    assert str(reply.generation_id) == end["generation_id"]
    assert reply.backend == "offline"
    assert reply.finish_reason == "stop"
    assert reply.completion_tokens
    assert reply.completion_tokens > 10
    assert reply.ttft_ms is not None
    assert reply.duration_ms is not None
    assert reply.sampling["temperature"] == 0.8
    assert reply.sampling["seed"] == reply.seed
    assert reply.is_active
    assert reply.error == ""
    await client.close()


async def test_history_is_sent_to_the_model_and_turns_count_up(writer):
    client, _ = await open_client("demo", token_for(writer))
    await client.turn("A blog post about cooking at home for a year")
    second = await client.turn("Make it warmer and more personal")
    assert second[0]["turn"] == 2
    await client.close()
    client, state = await open_client("demo", token_for(writer))
    assert [(m["turn"], m["role"]) for m in state["messages"]] == [
        (1, "user"), (1, "assistant"), (2, "user"), (2, "assistant"),
    ]  # fmt: skip
    assert state["turns_completed"] == 2
    assert state["messages"][3]["text"] == second[-1]["text"]
    await client.close()


async def test_rating_is_due_after_turn_three_and_required_before_turn_four(writer):
    client, _ = await open_client("demo", token_for(writer))
    for i in range(1, 3):
        frames = await client.turn(f"Message number {i} about budget travel")
        assert not any(f["type"] == "rating_due" for f in frames)
    await client.turn("Third message about budget travel")
    due = await client.until_type("rating_due")
    assert due[-1]["turn"] == 3

    refused = await client.error({"type": "send", "text": "A fourth message"})
    assert refused["code"] == "rating_required"
    assert refused["of"] == "send"

    await client.send({"type": "rate", "turn": 3, "value": 8})
    (ack,) = await client.until_type("ack")
    assert ack == {"type": "ack", "of": "rate", "turn": 3, "value": 8}
    ratings = await db(
        lambda: list(
            Rating.objects.filter(participation=writer).values_list("scale", "turn", "value")
        )
    )
    assert ratings == [(Scale.INTERACTION, 3, 8)]

    frames = await client.turn("Now the fourth message")
    assert frames[-1]["type"] == "turn_end"
    assert frames[-1]["turn"] == 4
    await client.close()


async def test_reconnect_after_a_due_rating_still_shows_it(writer):
    client, _ = await open_client("demo", token_for(writer))
    for i in range(3):
        await client.turn(f"Message {i} about the garden")
    await client.close()
    client, state = await open_client("demo", token_for(writer))
    assert state["rating_due"] == 3
    await client.close()


async def test_stop_ends_the_reply_with_the_partial_text(writer, settings):
    settings.OFFLINE_TOKENS_PER_SECOND = 20
    client, _ = await open_client("demo", token_for(writer))
    await client.send({"type": "send", "text": "Write a long draft about gardening"})
    await client.until_type("delta")
    await client.send({"type": "stop"})
    frames = await client.until_type("turn_end")
    end = frames[-1]
    assert end["finish_reason"] == "cancelled"
    reply = await db(lambda: Message.objects.get(participation=writer, role=Role.ASSISTANT))
    assert reply.finish_reason == "cancelled"
    assert reply.is_active
    assert reply.text == end["text"]
    assert 0 < len(reply.text) < 300  # the offline reply is several hundred characters
    stops = await db(
        lambda: ParticipationEvent.objects.filter(participation=writer, kind=EventKind.STOP).count()
    )
    assert stops == 1
    # The chat goes on after a stop.
    frames = await client.turn("Thanks, continue please")
    assert frames[-1]["type"] == "turn_end"
    assert frames[-1]["turn"] == 2
    await client.close()


async def test_a_resent_message_is_stored_once(writer):
    client, _ = await open_client("demo", token_for(writer))
    await client.turn("Hello there, about cooking", "same-id")
    await client.send(
        {"type": "send", "text": "Hello there, about cooking", "client_msg_id": "same-id"}
    )
    (ack,) = await client.until_type("ack")
    assert ack["duplicate"] is True
    assert ack["turn"] == 1
    count = await db(lambda: Message.objects.filter(participation=writer, role=Role.USER).count())
    assert count == 1
    await client.close()


async def test_document_saves_create_versions_and_edit_batches(writer):
    client, _ = await open_client("demo", token_for(writer))
    edits = [{"t": 1, "type": "insertText", "data": "H"}]
    await client.send({"type": "doc", "text": "Hello", "version_base": 0, "edits": edits})
    saved = (await client.until_type("doc_saved"))[-1]  # after the last save's doc_version
    assert saved == {"type": "doc_saved", "version": 1, "conflict": False}
    await client.send({"type": "doc", "text": "Hello world", "version_base": 1, "edits": edits})
    saved = (await client.until_type("doc_saved"))[-1]  # after the last save's doc_version
    assert saved["version"] == 2
    # Unchanged text makes no new version.
    await client.send({"type": "doc", "text": "Hello world", "version_base": 2})
    saved = (await client.until_type("doc_saved"))[-1]  # after the last save's doc_version
    assert saved["version"] == 2
    # A save based on an old version is kept (nothing lost) and flagged.
    await client.send({"type": "doc", "text": "Other tab", "version_base": 1})
    saved = (await client.until_type("doc_saved"))[-1]  # after the last save's doc_version
    assert saved == {
        "type": "doc_saved",
        "version": 3,
        "conflict": True,
        "replaced": {"version": 2, "text": "Hello world"},  # offered back to the participant
    }

    versions = await db(
        lambda: list(
            DocumentVersion.objects.filter(participation=writer).values_list("number", "text")
        )
    )
    assert versions == [(1, "Hello"), (2, "Hello world"), (3, "Other tab")]
    batches = await db(lambda: EditBatch.objects.filter(participation=writer).count())
    assert batches == 2
    await client.close()
    client, state = await open_client("demo", token_for(writer))
    assert state["document"] == {"text": "Other tab", "version": 3}
    await client.close()


@pytest.mark.parametrize("flush_ms", [1, 60_000])
async def test_deltas_are_coalesced_into_a_frame_per_flush_interval(writer, settings, flush_ms):
    settings.RELAY_FLUSH_MS = flush_ms
    client, _ = await open_client("demo", token_for(writer))
    frames = await client.turn("Help me write about budget travel in Portugal")
    deltas = [f["text"] for f in frames if f["type"] == "delta"]
    assert "".join(deltas) == frames[-1]["text"]
    if flush_ms == 1:
        assert len(deltas) > 10  # the offline arm's words, nearly one frame each
    else:
        assert len(deltas) == 2  # the first at once, the rest when the reply ends
    await client.close()


async def test_a_resend_during_its_own_reply_is_acknowledged_not_refused_as_busy(writer):
    # The page resends a cut message under its own id when its reconnect's state was read
    # before the message was stored; by then the reply may be streaming. "busy" would leave the
    # message in the box, and the participant would send it again as a new turn.
    first, _ = await open_client("demo", token_for(writer))
    send = {"type": "send", "text": "Hello there, about cooking", "client_msg_id": "cut-id"}
    await first.send(send)
    await first.until_type("delta")
    second, _ = await open_client("demo", token_for(writer))
    await second.send(send)
    ack = (await second.until(lambda f: f["type"] in ("ack", "error")))[-1]
    assert (ack["duplicate"], ack["turn"], ack["client_msg_id"]) == (True, 1, "cut-id")
    await second.send({**send, "client_msg_id": "another-id"})  # a new message is still busy
    error = (await second.until_type("error"))[-1]
    assert error["code"] == "busy"
    await first.until_type("turn_end")
    count = await db(lambda: Message.objects.filter(participation=writer, role=Role.USER).count())
    assert count == 1
    await first.close()
    await second.close()
