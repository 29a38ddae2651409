"""A local transformers model behind the co-writing socket: the same relay, the same frames."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from studyapp.studies.models import Condition
from studyapp.writing.models import Message, Role
from tests.writing.conftest import db, open_client, participation_on, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations", "hf_offline"),
]


def _local_participation(version, model: Path, adapter: Path | None = None):
    config = {
        "name": "local",
        "backend": "transformers",
        "model": str(model),
        "device": "cpu",
        "sampling": {"temperature": 0.0, "max_tokens": 12},
    }
    if adapter is not None:
        config["adapter"] = str(adapter)
    condition = Condition.objects.create(
        version=version, name="local", backend="transformers", config=config
    )
    return participation_on(version, condition)


def _assistant(participation) -> Message:
    return Message.objects.get(participation=participation, role=Role.ASSISTANT)


async def test_a_local_model_streams_to_the_participant_and_is_recorded(demo_version, tiny_model):
    participation = await db(_local_participation, demo_version, tiny_model)
    client, _ = await open_client("demo", token_for(participation))

    frames = await client.turn("write a short story about the garden", "m1")

    kinds = [f["type"] for f in frames]
    assert kinds[-1] == "turn_end", frames
    deltas = [f["text"] for f in frames if f["type"] == "delta"]
    assert len(deltas) >= 2  # streamed, not delivered whole
    assert "".join(deltas) == frames[-1]["text"]
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == sorted(set(seqs))
    # Nothing about the backend or model reaches the participant.
    assert not any("transformers" in raw or str(tiny_model) in raw for raw in client.raw)

    reply = await db(_assistant, participation)
    assert reply.text == frames[-1]["text"]
    assert reply.backend == "transformers"
    assert reply.model == str(tiny_model)
    assert reply.completion_tokens == 12
    assert reply.finish_reason == "length"
    assert (reply.prompt_tokens or 0) > 5
    assert reply.ttft_ms is not None
    await client.close()


async def test_a_base_model_with_a_lora_adapter_streams_through_the_socket(
    demo_version, tiny_model, tiny_adapter
):
    participation = await db(_local_participation, demo_version, tiny_model, tiny_adapter)
    client, _ = await open_client("demo", token_for(participation))
    frames = await client.turn("write a short story about the garden", "m1")
    assert frames[-1]["type"] == "turn_end", frames
    assert [f for f in frames if f["type"] == "delta"]
    reply = await db(_assistant, participation)
    assert reply.text == frames[-1]["text"]
    assert reply.adapter == str(tiny_adapter)
    assert reply.completion_tokens == 12
    await client.close()
