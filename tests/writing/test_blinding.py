"""A JSON arm's reply without ``response`` text never reaches the page: the turn fails with the
standard Retry message, and researchers find the raw reply and why."""

from __future__ import annotations

import json

import pytest

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


@pytest.mark.parametrize(
    ("tokens", "finish_reason"),
    [
        ([HIDDEN[:30], HIDDEN[30:]], "length"),  # cut off inside the hidden reasoning
        ([HIDDEN, ' first."}'], "stop"),  # no response field at all
        (["Thought: ask about ", "the audience first."], "stop"),  # prose, not JSON
    ],
)
async def test_a_json_reply_without_response_is_a_failed_turn_showing_nothing(
    demo_version, tokens: list[str], finish_reason: str
):
    async with FakeVLLM(tps=0) as fake:
        fake.script(
            Script(tokens=tokens, finish_reason=finish_reason),
            Script(tokens=[json.dumps({"thought": "t", "response": "Who is it for?"})]),
        )
        participation = await db(_json_writer, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))
        frames = await client.turn("Help me write a blog post about Lisbon")
        shown = json.dumps(frames)
        for secret in ("current_problem", "thought", "audience", "Thought"):
            assert secret not in shown
        assert frames[-1]["type"] == "turn_error"
        assert frames[-1]["retry"] is True
        assert "Retry" in frames[-1]["message"]

        (failed,) = await db(_replies, participation)
        assert not failed.is_active
        assert failed.text == ""
        assert failed.finish_reason == "error"
        assert failed.raw_output == "".join(tokens)
        assert failed.error.startswith("malformed_json: ")
        (event,) = await db(_model_errors, participation)
        assert event["error"] == failed.error
        assert event["permanent"] is False

        await client.send({"type": "retry"})
        frames = await client.until(lambda f: f["type"] in ("turn_end", "turn_error"))
        assert frames[-1]["type"] == "turn_end"
        assert frames[-1]["text"] == "Who is it for?"
        await client.close()
