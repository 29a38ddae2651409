"""A JSON arm's reply without ``response`` text never reaches the page: it is asked for again
at once, and replaced by a neutral reply if that fails too; researchers find the raw replies
and why."""

from __future__ import annotations

import json

import pytest

from collab_models.blinding import NEUTRAL_REPLY
from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.writing.conftest import db, open_client, participation_on, remote_condition, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations", "clean_transport"),
]

HIDDEN = '{"current_problem": "Who reads the post?", "thought": "Ask about the audience'


def _json_writer(demo_version, url: str):
    condition = remote_condition(demo_version, url)
    condition.config = {**condition.config, "response_format": "json_response"}
    condition.save(update_fields=["config"])
    return participation_on(demo_version, condition)


def _replies(participation) -> list[Message]:
    return list(Message.objects.filter(participation=participation, role=Role.ASSISTANT))


def _model_errors(participation) -> list[dict]:
    events = ParticipationEvent.objects.filter(
        participation=participation, kind=EventKind.MODEL_ERROR
    )
    return [e.data for e in events]


NO_RESPONSE = [
    ([HIDDEN[:30], HIDDEN[30:]], "length"),  # cut off inside the hidden reasoning
    ([HIDDEN, ' first."}'], "stop"),  # no response field at all
    (["Thought: ask about ", "the audience first."], "stop"),  # prose, not JSON
]


@pytest.mark.parametrize(("tokens", "finish_reason"), NO_RESPONSE)
async def test_a_json_reply_without_response_is_asked_again_at_once_showing_nothing(
    demo_version, tokens: list[str], finish_reason: str
):
    async with FakeVLLM(tps=0) as fake:
        good = json.dumps({"thought": "t", "response": "Who is it for?"})
        fake.script(Script(tokens=tokens, finish_reason=finish_reason), Script(tokens=[good]))
        participation = await db(_json_writer, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))
        frames = await client.turn("Help me write a blog post about Lisbon")
        shown = json.dumps(frames)
        for secret in ("current_problem", "thought", "audience", "Thought"):
            assert secret not in shown
        assert frames[-1]["type"] == "turn_end"  # no Retry asked of the participant
        assert frames[-1]["text"] == "Who is it for?"

        (reply,) = await db(_replies, participation)
        assert reply.is_active
        assert reply.text == "Who is it for?"
        assert reply.finish_reason == "stop"
        assert reply.raw_output.startswith("".join(tokens))  # both attempts kept
        assert reply.raw_output.endswith(good)
        assert reply.warning.startswith("malformed_json: ")
        assert await db(_model_errors, participation) == []
        await client.close()


@pytest.mark.parametrize(("tokens", "finish_reason"), NO_RESPONSE)
async def test_a_json_reply_without_response_twice_shows_the_neutral_reply(
    demo_version, tokens: list[str], finish_reason: str
):
    async with FakeVLLM(tps=0) as fake:
        fake.script(*[Script(tokens=tokens, finish_reason=finish_reason)] * 2)
        participation = await db(_json_writer, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))
        frames = await client.turn("Help me write a blog post about Lisbon")
        shown = json.dumps(frames)
        for secret in ("current_problem", "thought", "audience", "Thought"):
            assert secret not in shown
        assert frames[-1]["type"] == "turn_end"
        assert frames[-1]["text"] == NEUTRAL_REPLY

        (reply,) = await db(_replies, participation)
        assert reply.is_active
        assert reply.text == NEUTRAL_REPLY
        assert "replaced by the neutral reply" in reply.warning
        assert reply.raw_output.count("".join(tokens)) == 2
        await client.close()
