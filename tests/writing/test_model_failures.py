"""A model that fails: the participant gets a plain message and Retry, researchers the details."""

from __future__ import annotations

import pytest

from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.studies.models import Condition
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.writing.conftest import (
    db,
    free_port,
    open_client,
    participation_on,
    remote_condition,
    token_for,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations", "clean_transport"),
]


def _switch_to_offline(condition: Condition) -> None:
    condition.config = {"name": condition.name, "backend": "offline", "style": "base"}
    condition.backend = "offline"
    condition.save(update_fields=["config", "backend"])


def _assistant_messages(participation) -> list[Message]:
    return list(
        Message.objects.filter(participation=participation, role=Role.ASSISTANT).order_by("id")
    )


def _writer_on(demo_version, url: str):
    """A participation whose condition's model server is at ``url``."""
    return participation_on(demo_version, remote_condition(demo_version, url))


@pytest.fixture
def remote_writer(demo_version):
    return _writer_on(demo_version, f"http://127.0.0.1:{free_port()}")  # nothing listens


async def test_unreachable_model_gives_turn_error_and_retry_recovers(remote_writer):
    client, _ = await open_client("demo", token_for(remote_writer))
    frames = await client.turn("Help me plan a blog post about budget travel", "first")
    error = frames[-1]
    assert error["type"] == "turn_error"
    assert error["retry"] is True
    assert error["turn"] == 1
    # The participant's message says what to do and nothing about the server.
    assert "Retry" in error["message"]
    for detail in ("127.0.0.1", "Connect", "openai", "Llama", "remote"):
        assert detail not in error["message"]

    (failed,) = await db(_assistant_messages, remote_writer)
    assert not failed.is_active
    assert failed.finish_reason == "error"
    assert failed.error
    assert str(failed.generation_id) == error["generation_id"]
    event = await db(
        lambda: ParticipationEvent.objects.get(
            participation=remote_writer, kind=EventKind.MODEL_ERROR
        )
    )
    assert event.data["generation_id"] == error["generation_id"]
    assert event.data["error"] == failed.error
    assert event.data["backend"] == "openai"

    # A new message must wait for the retry.
    refused = await client.error({"type": "send", "text": "Hello?"})
    assert refused["code"] == "retry_required"

    # A reconnecting page sees the failed turn and its Retry.
    await client.close()
    client, state = await open_client("demo", token_for(remote_writer))
    assert [m["role"] for m in state["messages"]] == ["user"]
    replayed = await client.until_type("turn_error")
    assert replayed[-1]["generation_id"] == error["generation_id"]

    # The model comes back; Retry re-runs the same turn.
    await db(_switch_to_offline, remote_writer.condition)
    await client.send({"type": "retry"})
    frames = await client.until(lambda f: f["type"] in ("turn_end", "turn_error"))
    assert frames[0] == {"type": "ack", "of": "retry", "turn": 1}
    assert frames[-1]["type"] == "turn_end"
    assert frames[-1]["turn"] == 1
    failed, retried = await db(_assistant_messages, remote_writer)
    assert not failed.is_active  # the failure is kept for researchers
    assert retried.is_active
    assert retried.text == frames[-1]["text"]
    users = await db(
        lambda: Message.objects.filter(participation=remote_writer, role=Role.USER).count()
    )
    assert users == 1
    await client.close()


async def test_failure_mid_stream_keeps_the_partial_text(demo_version):
    async with FakeVLLM(tps=0) as fake:
        fake.script(
            Script(text="One two three four five six seven eight nine ten", cut_after=4),
            Script(text="A complete reply this time"),
        )

        participation = await db(_writer_on, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))
        frames = await client.turn("Write me something")
        assert frames[-1]["type"] == "turn_error"
        shown = "".join(f["text"] for f in frames if f["type"] == "delta")
        assert shown.startswith("One two")
        (failed,) = await db(_assistant_messages, participation)
        assert failed.text == shown
        assert failed.finish_reason == "error"
        assert failed.error

        await client.send({"type": "retry"})
        frames = await client.until(lambda f: f["type"] in ("turn_end", "turn_error"))
        assert frames[-1]["type"] == "turn_end"
        assert frames[-1]["text"] == "A complete reply this time"
        assert "".join(f["text"] for f in frames if f["type"] == "delta") == frames[-1]["text"]
        # The retry sent the same conversation: one user message, no failed reply in it.
        sent = fake.chat_requests()[-1].body["messages"]
        assert [m["role"] for m in sent] == ["user"]
        await client.close()


async def test_slow_model_keeps_its_marker_alive_and_the_reply_arrives(demo_version, monkeypatch):
    from studyapp.realtime import framebus, framestore, generations

    touched: list[str] = []
    real_store = framestore.frame_store

    class CountingStore:
        def __init__(self, store):
            self.store = store

        def __getattr__(self, name):
            return getattr(self.store, name)

        async def touch(self, key):
            touched.append(key)
            await self.store.touch(key)

    # A generation keeps its marker alive through its lease (studyapp/realtime/framebus.py).
    monkeypatch.setattr(framebus, "frame_store", lambda: CountingStore(real_store()))
    monkeypatch.setattr(generations, "KEEPALIVE_S", 0.1)
    async with FakeVLLM(tps=0) as fake:
        fake.script(Script(text="Worth the wait", first_token_delay=0.6))

        participation = await db(_writer_on, demo_version, fake.url)
        client, _ = await open_client("demo", token_for(participation))
        frames = await client.turn("Take your time")
        assert frames[-1]["type"] == "turn_end"
        assert "".join(f["text"] for f in frames if f["type"] == "delta") == "Worth the wait"
        # The generation woke once per keep-alive period while the model was silent.
        assert 3 <= touched.count(participation.public_id.hex) <= 7
        await client.close()
