"""The turn minimum against the cheapest inputs (STUDY.md §7): replies stopped before their
first word and one-word messages buy no turn, over the real socket."""

from __future__ import annotations

import pytest

from studyapp.feedback.services import FinishRefused, writing_finish
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.writing.conftest import db, open_client, participation_on, remote_condition, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations", "clean_transport"),
]


async def _answer_rating(client, frames: list[dict]) -> None:
    """Give a rating the chat asks for (a checkpoint follows turns 3 and 6)."""
    end = frames[-1]
    if end["turn"] in (3, 6):
        due = (await client.until_type("rating_due"))[-1]
        await client.send({"type": "rate", "turn": due["turn"], "value": 5})
        await client.until(lambda f: f["type"] == "ack" and f["of"] == "rate")


async def _send_and_stop(client, text: str, msg_id: str) -> list[dict]:
    await client.send({"type": "send", "text": text, "client_msg_id": msg_id})
    await client.until_type("turn_start")
    await client.send({"type": "stop"})
    return await client.until(lambda f: f["type"] in ("turn_end", "turn_error"))


def _finish(participation) -> str:
    with pytest.raises(FinishRefused) as refused:
        writing_finish(participation=participation)
    return str(refused.value)


async def test_replies_stopped_before_their_first_word_buy_no_turn(demo_version):
    async with FakeVLLM(tps=0) as fake:
        fake.script(*[Script(text="A draft you will never see", first_token_delay=5)] * 8)
        condition = await db(remote_condition, demo_version, fake.url)
        participation = await db(participation_on, demo_version, condition)
        client, _ = await open_client("demo", token_for(participation))
        for turn in range(1, 9):
            frames = await _send_and_stop(client, "Please write my post", f"m-{turn}")
            assert frames[-1]["type"] == "turn_end"
            assert frames[-1]["finish_reason"] == "cancelled"
            assert frames[-1]["text"] == ""
            await _answer_rating(client, frames)
        await client.close()
        client, state = await open_client("demo", token_for(participation))
        await client.close()
    assert len([m for m in state["messages"] if m["role"] == "assistant"]) == 8
    assert state["turns_completed"] == 0
    assert "you have 0" in await db(_finish, participation)


async def test_one_word_messages_buy_no_turn_and_replies_with_text_do(writer):
    client, _ = await open_client("demo", token_for(writer))
    for turn, text in enumerate(["a", "  ok  ", "Please continue", "Yes, shorter"], start=1):
        frames = await client.turn(text, f"m-{turn}")
        assert frames[-1]["type"] == "turn_end"
        assert frames[-1]["text"].strip()
        await _answer_rating(client, frames)
    await client.close()
    client, state = await open_client("demo", token_for(writer))
    await client.close()
    assert state["turns_completed"] == 2
    assert state["min_message_words"] == 2
    assert "you have 2" in await db(_finish, writer)
