"""The socket begins the reply before the database has stored the turn (``relay.EarlyReply``).

The reply is kept only when the turn the database confirms has exactly the history it was
begun with; otherwise it is withdrawn (``turn_withdrawn``), its model call closed, and the turn
is generated from the stored conversation.
"""

from __future__ import annotations

import pytest

from studyapp.participants.models import Status
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.writing.conftest import (
    db,
    open_client,
    participation_on,
    remote_condition,
    token_for,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations", "clean_transport"),
]


def _remote_participation(version, endpoint: str):
    return participation_on(version, remote_condition(version, endpoint))


def _messages(participation) -> list[tuple[int, str, str]]:
    rows = Message.objects.filter(participation=participation, is_active=True).order_by("id")
    return [(m.turn, m.role, m.text) for m in rows]


async def test_the_early_call_is_the_turns_only_request(demo_version):
    async with FakeVLLM(tps=0) as fake:
        fake.script(Script(text="First reply"), Script(text="Second reply"))
        participation = await db(_remote_participation, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))

        frames = await client.turn("Help me with a blog post", "m1")
        assert frames[-1]["type"] == "turn_end"
        assert frames[-1]["text"] == "First reply"
        frames = await client.turn("Make it shorter", "m2")
        assert frames[-1]["text"] == "Second reply"

        requests = fake.chat_requests()
        # One request a turn: the call opened on arrival was adopted, not opened twice.
        assert len(requests) == 2
        assert fake.disconnects == 0
        assert [m["content"] for m in requests[1].body["messages"]] == [
            "Help me with a blog post",
            "First reply",
            "Make it shorter",
        ]
        assert await db(_messages, participation) == [
            (1, Role.USER, "Help me with a blog post"),
            (1, Role.ASSISTANT, "First reply"),
            (2, Role.USER, "Make it shorter"),
            (2, Role.ASSISTANT, "Second reply"),
        ]
        await client.close()


async def test_a_stale_guess_is_closed_and_the_stored_history_is_used(demo_version):
    async with FakeVLLM(tps=0) as fake:
        # The first request (the socket's guess) is slow, so only its closing can end it.
        fake.script(Script(text="Stale reply", first_token_delay=3), Script(text="Fresh reply"))
        participation = await db(_remote_participation, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))

        def turn_behind_the_sockets_back():
            Message.objects.create(participation=participation, turn=1, role=Role.USER, text="Hi")
            Message.objects.create(
                participation=participation, turn=1, role=Role.ASSISTANT, text="Hello!"
            )

        await db(turn_behind_the_sockets_back)
        frames = await client.turn("Write the intro", "m2")
        assert frames[-1]["type"] == "turn_end"
        assert frames[-1]["turn"] == 2
        assert frames[-1]["text"] == "Fresh reply"
        assert "Stale" not in "".join(f.get("text", "") for f in frames)

        guess, used = fake.chat_requests()
        assert [m["content"] for m in guess.body["messages"]] == ["Write the intro"]
        assert [m["content"] for m in used.body["messages"]] == ["Hi", "Hello!", "Write the intro"]
        assert await fake.wait_for(lambda: fake.disconnects == 1)  # the guess was closed
        assert (await db(_messages, participation))[-1] == (2, Role.ASSISTANT, "Fresh reply")
        await client.close()


async def test_a_refused_send_closes_its_early_call_and_stores_nothing(demo_version):
    async with FakeVLLM(tps=0) as fake:
        fake.script(Script(text="Never shown", first_token_delay=3))
        participation = await db(_remote_participation, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))

        def finish_elsewhere():
            participation.status = Status.FINISHED
            participation.save(update_fields=["status"])

        await db(finish_elsewhere)
        await client.send({"type": "send", "text": "One more thing", "client_msg_id": "x"})
        seen: set[str] = set()
        frames = await client.until(
            lambda f: seen.add(f["type"]) or {"error", "turn_withdrawn"} <= seen
        )
        (error,) = [f for f in frames if f["type"] == "error"]
        assert error["code"] == "not_writing"
        # The reply had begun; it is taken back, with nothing shown of it.
        (withdrawn,) = [f for f in frames if f["type"] == "turn_withdrawn"]
        (start,) = [f for f in frames if f["type"] == "turn_start"]
        assert (start["turn"], start["user_text"]) == (1, "One more thing")
        assert withdrawn == {
            "type": "turn_withdrawn",
            "seq": start["seq"] + 1,
            "epoch": start["epoch"],
            "turn": 1,
            "generation_id": start["generation_id"],
        }
        assert not any(f["type"] == "delta" for f in frames)
        # The socket expected a turn, so it did ask the model; the refusal closed that request.
        assert await fake.wait_for(lambda: len(fake.chat_requests()) == 1)
        assert await fake.wait_for(lambda: fake.disconnects == len(fake.chat_requests()))
        assert await db(_messages, participation) == []
        await client.close()


async def test_a_send_the_rules_refuse_by_what_the_socket_saw_asks_no_model(demo_version):
    """The socket asks the chat's rules (services.send_refusal) about its view of the chat:
    with a rating due (every 3 turns in the demo study) the next message opens no call."""
    async with FakeVLLM(tps=0) as fake:
        fake.script(*(Script(text=f"Reply {i}") for i in range(1, 5)))
        participation = await db(_remote_participation, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))
        for turn in (1, 2, 3):
            await client.turn(f"Message {turn}", f"m{turn}")
        await client.until_type("rating_due")

        error = await client.error({"type": "send", "text": "Message 4", "client_msg_id": "m4"})
        assert error["code"] == "rating_required"
        assert len(fake.chat_requests()) == 3  # no call was opened for the refused message
        await client.send({"type": "rate", "turn": 3, "value": 4})
        await client.until_type("ack")
        frames = await client.turn("Message 4", "m4")
        assert frames[-1]["text"] == "Reply 4"
        assert len(fake.chat_requests()) == 4
        assert fake.disconnects == 0
        await client.close()


async def test_a_resend_of_a_message_stored_unseen_adopts_its_early_call(demo_version):
    """A message stored, its reply never started (Redis went away: the send was answered
    ``unavailable``), is sent again on a socket whose view of the chat predates it: the reply
    the socket begins at once is that turn's, with no second request and nothing withdrawn."""
    async with FakeVLLM(tps=0) as fake:
        fake.script(Script(text="The reply"))
        participation = await db(_remote_participation, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))
        await db(
            Message.objects.create,
            participation=participation,
            turn=1,
            role=Role.USER,
            text="Help me with a blog post",
            client_msg_id="m1",
        )

        frames = await client.turn("Help me with a blog post", "m1")
        assert frames[-1]["type"] == "turn_end"
        assert frames[-1]["text"] == "The reply"
        assert not any(f["type"] == "turn_withdrawn" for f in frames)
        acks = [f for f in client.frames if f["type"] == "ack"] or await client.until_type("ack")
        assert (acks[-1]["turn"], acks[-1]["duplicate"]) == (1, True)
        assert len(fake.chat_requests()) == 1
        assert fake.disconnects == 0
        assert await db(_messages, participation) == [
            (1, Role.USER, "Help me with a blog post"),
            (1, Role.ASSISTANT, "The reply"),
        ]
        await client.close()
