"""Every bad frame gets its documented error code, keeps the socket open and stores nothing."""

from __future__ import annotations

import json

import pytest

from studyapp.feedback.models import Rating
from studyapp.writing.models import DocumentVersion, Message, Role
from tests.writing.conftest import db, open_client, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]


def _stored(participation) -> tuple[int, int, int]:
    return (
        Message.objects.filter(participation=participation).count(),
        DocumentVersion.objects.filter(participation=participation).count(),
        Rating.objects.filter(participation=participation).count(),
    )


async def _still_works(client) -> None:
    """The socket survived: a valid frame still gets its answer."""
    await client.send({"type": "doc", "text": "still here", "version_base": 0})
    (saved,) = await client.until_type("doc_saved")
    assert saved["version"] >= 1


BAD_FRAMES = {
    "malformed_json": ("{not json", "bad_json", None),
    "json_not_an_object": ("[1, 2, 3]", "bad_json", None),
    "missing_type": ({"text": "hi"}, "bad_field", "type"),
    "unknown_type": ({"type": "launch_rockets"}, "unknown_type", "type"),
    "send_without_text": ({"type": "send"}, "bad_field", "text"),
    "send_text_not_a_string": ({"type": "send", "text": 42}, "bad_field", "text"),
    "send_bad_client_msg_id": (
        {"type": "send", "text": "hi", "client_msg_id": "<script>"},
        "bad_field",
        "client_msg_id",
    ),
    "send_empty": ({"type": "send", "text": ""}, "message_empty", "text"),
    "send_only_spaces": ({"type": "send", "text": "   \n\t "}, "message_empty", "text"),
    "rate_value_not_a_number": ({"type": "rate", "turn": 3, "value": "7"}, "bad_field", "value"),
    "rate_without_turn": ({"type": "rate", "value": 7}, "bad_field", "turn"),
    "doc_without_version_base": ({"type": "doc", "text": "x"}, "bad_field", "version_base"),
    "doc_text_not_a_string": (
        {"type": "doc", "text": ["x"], "version_base": 0},
        "bad_field",
        "text",
    ),
    "doc_edits_not_objects": (
        {"type": "doc", "text": "x", "version_base": 0, "edits": [1, 2]},
        "bad_field",
        "edits",
    ),
    "heartbeat_focused_not_bool": ({"type": "heartbeat", "focused": "yes"}, "bad_field", "focused"),
    "hello_negative_last_seq": ({"type": "hello", "last_seq": -4}, "bad_field", "last_seq"),
    "regenerate_without_turn": ({"type": "regenerate"}, "bad_field", "turn"),
    "regenerate_turn_not_a_number": ({"type": "regenerate", "turn": "1"}, "bad_field", "turn"),
    "choose_without_group": ({"type": "choose", "generation_id": "abc"}, "bad_field", "group"),
    "choose_generation_not_a_string": (
        {"type": "choose", "group": "abc", "generation_id": 7},
        "bad_field",
        "generation_id",
    ),
    "choose_with_nothing_to_choose": (
        {"type": "choose", "group": "abc", "generation_id": "def"},
        "nothing_to_choose",
        None,
    ),
    "regenerate_with_nothing_to_regenerate": (
        {"type": "regenerate", "turn": 1},
        "nothing_to_regenerate",
        None,
    ),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
async def test_bad_frame_gets_its_error_code(writer, name):
    frame, code, field = BAD_FRAMES[name]
    client, _ = await open_client("demo", token_for(writer))
    before = await db(_stored, writer)
    reply = await client.error(frame if isinstance(frame, str) else json.dumps(frame))
    assert reply["code"] == code
    assert reply["message"]
    assert reply.get("field") == field
    assert await db(_stored, writer) == before
    await _still_works(client)
    await client.close()


async def test_binary_frames_are_refused(writer):
    client, _ = await open_client("demo", token_for(writer))
    await client.comm.send_to(bytes_data=b'{"type": "heartbeat"}')
    (reply,) = await client.until_type("error")
    assert reply["code"] == "bad_json"
    await _still_works(client)
    await client.close()


async def test_frame_over_the_size_limit(writer, settings):
    settings.MAX_WS_FRAME_BYTES = 1000
    client, _ = await open_client("demo", token_for(writer))
    # About 650 characters but 1250 bytes: the limit is in bytes.
    frame = json.dumps({"type": "doc", "text": "é" * 600, "version_base": 0}, ensure_ascii=False)
    reply = await client.error(frame)
    assert reply["code"] == "frame_too_large"
    assert await db(_stored, writer) == (0, 0, 0)
    await _still_works(client)
    await client.close()


async def test_message_over_the_length_limit(writer, settings):
    client, _ = await open_client("demo", token_for(writer))
    reply = await client.error({"type": "send", "text": "a" * (settings.MAX_MESSAGE_CHARS + 1)})
    assert reply["code"] == "message_too_long"
    assert reply["of"] == "send"
    assert await db(_stored, writer) == (0, 0, 0)
    # Exactly at the limit is accepted.
    frames = await client.turn("a" * settings.MAX_MESSAGE_CHARS)
    assert frames[-1]["type"] == "turn_end"
    await client.close()


async def test_document_over_the_length_limit(writer, settings):
    settings.MAX_DOCUMENT_CHARS = 50
    client, _ = await open_client("demo", token_for(writer))
    reply = await client.error({"type": "doc", "text": "x" * 51, "version_base": 0})
    assert reply["code"] == "doc_too_long"
    assert await db(_stored, writer) == (0, 0, 0)
    await _still_works(client)
    await client.close()


async def test_frames_before_hello_are_refused(writer):
    client, _ = await open_client("demo", token_for(writer), hello=False)
    reply = await client.error({"type": "send", "text": "hello?"})
    assert reply["code"] == "hello_required"
    await client.hello()
    await _still_works(client)
    await client.close()


async def test_message_while_a_reply_is_streaming_is_busy(writer, settings):
    settings.OFFLINE_TOKENS_PER_SECOND = 40
    client, _ = await open_client("demo", token_for(writer))
    await client.send({"type": "send", "text": "Write about travelling on a budget"})
    await client.until_type("delta")
    reply = await client.error({"type": "send", "text": "And another thing"})
    assert reply["code"] == "busy"
    retry = await client.error({"type": "retry"})
    assert retry["code"] == "busy"
    await client.until_type("turn_end")
    users = await db(lambda: Message.objects.filter(participation=writer, role=Role.USER).count())
    assert users == 1
    await client.close()


async def test_message_while_a_rating_is_due(writer):
    client, _ = await open_client("demo", token_for(writer))
    for i in range(3):
        await client.turn(f"Message {i} for the blog post")
    reply = await client.error({"type": "send", "text": "One more"})
    assert reply["code"] == "rating_required"
    users = await db(lambda: Message.objects.filter(participation=writer, role=Role.USER).count())
    assert users == 3
    await client.close()


@pytest.mark.parametrize("value", [0, 11, -1, 100])
async def test_rating_off_the_scale(writer, value):
    client, _ = await open_client("demo", token_for(writer))
    for i in range(3):
        await client.turn(f"Message {i} for the blog post")
    reply = await client.error({"type": "rate", "turn": 3, "value": value})
    assert reply["code"] == "bad_rating"
    assert await db(lambda: Rating.objects.filter(participation=writer).count()) == 0
    await client.close()


async def test_rating_for_a_turn_that_is_not_a_checkpoint(writer):
    client, _ = await open_client("demo", token_for(writer))
    for i in range(3):
        await client.turn(f"Message {i} for the blog post")
    for turn in (1, 2, 4, 6):
        reply = await client.error({"type": "rate", "turn": turn, "value": 5})
        assert reply["code"] == "bad_rating", turn
    assert await db(lambda: Rating.objects.filter(participation=writer).count()) == 0
    await client.close()


async def test_rating_before_the_checkpoint_reply_has_ended(writer):
    client, _ = await open_client("demo", token_for(writer))
    for i in range(2):
        await client.turn(f"Message {i} for the blog post")
    reply = await client.error({"type": "rate", "turn": 3, "value": 5})
    assert reply["code"] == "bad_rating"
    await client.close()


async def test_rating_a_checkpoint_twice(writer):
    client, _ = await open_client("demo", token_for(writer))
    for i in range(3):
        await client.turn(f"Message {i} for the blog post")
    await client.send({"type": "rate", "turn": 3, "value": 6})
    await client.until_type("ack")
    reply = await client.error({"type": "rate", "turn": 3, "value": 9})
    assert reply["code"] == "bad_rating"
    values = await db(
        lambda: list(Rating.objects.filter(participation=writer).values_list("value"))
    )
    assert values == [(6,)]
    await client.close()


async def test_more_turns_than_the_study_allows(writer):
    def shrink():
        version = writer.version
        version.spec["writing"].update(min_turns=1, max_turns=2)
        version.save(update_fields=["spec"])

    await db(shrink)
    client, _ = await open_client("demo", token_for(writer))
    await client.turn("First message")
    await client.turn("Second message")
    reply = await client.error({"type": "send", "text": "Third message"})
    assert reply["code"] == "max_turns"
    users = await db(lambda: Message.objects.filter(participation=writer, role=Role.USER).count())
    assert users == 2
    await client.close()


async def test_stop_with_nothing_streaming(writer):
    client, _ = await open_client("demo", token_for(writer))
    reply = await client.error({"type": "stop"})
    assert reply["code"] == "not_generating"
    await client.close()


async def test_retry_with_nothing_to_retry(writer):
    client, _ = await open_client("demo", token_for(writer))
    reply = await client.error({"type": "retry"})
    assert reply["code"] == "nothing_to_retry"
    await client.turn("A message that gets an answer")
    reply = await client.error({"type": "retry"})
    assert reply["code"] == "nothing_to_retry"
    await client.close()
