"""No dead ends: a model that cannot answer sends the participant on with the
technical-problem code; a conversation longer than the window goes on, shortened."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest

from studyapp.dashboards.selectors import study_monitor
from studyapp.participants.models import EventKind, Outcome, ParticipationEvent, Status
from studyapp.participants.pseudonyms import participation_pseudonym
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.writing.conftest import db, open_client, remote_participation, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations", "clean_transport"),
]


@contextlib.contextmanager
def _logged(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records ``name`` logs meanwhile (whatever the handlers of the settings)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _reload(participation):
    participation.refresh_from_db()
    return participation


def _use_model(participation, model: str) -> None:
    condition = participation.condition
    condition.config = {**condition.config, "model": model}
    condition.save(update_fields=["config"])


async def test_unknown_model_ends_on_the_technical_problem_page_at_once(demo_version):
    async with FakeVLLM(tps=0) as fake:
        participation = await db(remote_participation, demo_version, fake.url)
        await db(_use_model, participation, "no-such-model")
        client, _ = await open_client("demo", token_for(participation))
        with _logged("studyapp.writing.relay") as records:
            frames = await client.turn("Help me write a blog post about cooking")
        end = frames[-1]
        assert end["type"] == "turn_error"
        assert end["retry"] is False
        assert end["next_url"] == "/study/demo/done/"
        assert "technical problem" in end["message"]
        assert "no-such-model" not in end["message"]

        ended = await db(_reload, participation)
        assert ended.status == Status.TECHNICAL_PROBLEM
        assert ended.outcome == Outcome.TECHNICAL_PROBLEM
        assert ended.completion_code == "TECHPROB"
        assert ended.technical_problem_at is not None
        kinds = await db(
            lambda: list(
                ParticipationEvent.objects.filter(participation=participation).values_list(
                    "kind", flat=True
                )
            )
        )
        assert EventKind.TECHNICAL_PROBLEM in kinds
        # The server log names the participant by pseudonym, never by platform id.
        logged = "\n".join(r.getMessage() for r in records)
        assert await db(participation_pseudonym, participation) in logged
        assert participation.external_id not in logged
        assert "no-such-model" in logged
        refused = await client.error({"type": "send", "text": "Hello again"})
        assert refused["code"] == "not_writing"
        await client.close()


async def test_a_5xx_that_never_clears_ends_after_max_failed_replies(demo_version):
    async with FakeVLLM(tps=0) as fake:
        fake.script(*[Script(status=503)] * 10)
        participation = await db(remote_participation, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))
        frames = await client.turn("Help me write a blog post about cooking")
        assert frames[-1]["retry"] is True  # the first failure may clear: Retry is offered
        await client.send({"type": "retry"})
        second = await client.until(lambda f: f["type"] in ("turn_end", "turn_error"))
        assert second[-1]["retry"] is True
        await client.send({"type": "retry"})
        third = await client.until(lambda f: f["type"] in ("turn_end", "turn_error"))
        assert third[-1]["retry"] is False  # writing.max_failed_replies: 3
        assert third[-1]["next_url"] == "/study/demo/done/"
        ended = await db(_reload, participation)
        assert ended.status == Status.TECHNICAL_PROBLEM
        assert len(fake.chat_requests()) == 3  # retries: 0 in this condition
        # Researchers see it at once on the live monitor.
        monitor = await db(study_monitor, study=demo_version.study)
        assert monitor["counts"]["technical_problems"] == 1
        await client.close()


def _long_history(participation, turns: int) -> None:
    for turn in range(1, turns + 1):
        words = " ".join(["draft"] * 80)
        Message.objects.create(
            participation=participation, turn=turn, role=Role.USER, text=f"u{turn} {words}"
        )
        Message.objects.create(
            participation=participation,
            turn=turn,
            role=Role.ASSISTANT,
            text=f"a{turn} {words}",
            finish_reason="stop",
        )


async def test_a_chat_longer_than_the_window_goes_on_with_the_truncation_recorded(demo_version):
    async with FakeVLLM(tps=0, max_model_len=500) as fake:  # max_tokens is 256
        participation = await db(remote_participation, demo_version, fake.url)
        await db(_long_history, participation, 2)  # no rating due before turn 3
        client, _ = await open_client("demo", token_for(participation))
        frames = await client.turn("Now make the ending shorter please")
        assert frames[-1]["type"] == "turn_end"

        reply = await db(
            lambda: Message.objects.get(participation=participation, turn=3, role=Role.ASSISTANT)
        )
        assert reply.dropped_turns == 1  # the second exchange
        assert reply.endpoint == fake.url
        assert reply.text == frames[-1]["text"]
        sent = fake.chat_requests()[-1].body["messages"]
        assert sent[0]["content"].startswith("u1 ")  # the first exchange is kept
        assert sent[-1]["content"] == "Now make the ending shorter please"
        assert len(sent) == 3
        assert len(fake.chat_requests()) == 2  # the 400, then the shortened request
        await client.close()
