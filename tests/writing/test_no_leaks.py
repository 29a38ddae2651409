"""No frame a participant receives names their condition, its backend or its model."""

from __future__ import annotations

import json
import re

import pytest

from tests.writing.conftest import CONDITION_NAMES, db, make_participation, open_client, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]

RECORD_KEYS = {
    "backend", "model", "adapter", "prompt_version", "prompt_sha256", "sampling", "raw_output",
    "endpoint",
    "prompt_tokens", "completion_tokens", "ttft_ms", "duration_ms", "seed", "error", "condition",
}  # fmt: skip


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.mark.parametrize("condition", CONDITION_NAMES)
async def test_frames_never_name_the_arm(demo_version, condition, settings):
    participation = await db(make_participation, demo_version, condition)
    config = participation.condition.config
    forbidden = {condition, config["backend"], "proactive_base", "collabllm", "llama"}
    forbidden |= {"current_problem"}  # the JSON arm shows only its response field
    forbidden |= {config.get("model", ""), config.get("adapter", ""), config.get("style", "")}
    forbidden -= {""}

    client, _ = await open_client("demo", token_for(participation))
    await client.turn("Help me write a blog post about a year of cooking at home")
    await client.turn("Friends and family, warm and personal")
    await client.turn("Please make it shorter")
    await client.until_type("rating_due")
    await client.send({"type": "rate", "turn": 3, "value": 7})
    await client.until_type("ack")
    settings.OFFLINE_TOKENS_PER_SECOND = 40
    await client.send({"type": "send", "text": "One more change please"})
    await client.until_type("delta")
    await client.send({"type": "stop"})
    await client.until_type("turn_end")
    await client.error({"type": "launch"})
    await client.close()
    reconnected, _ = await open_client("demo", token_for(participation))
    await reconnected.close()

    raw = client.raw + reconnected.raw
    assert len(raw) > 10
    for text in raw:
        for word in forbidden:
            assert not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, re.I), (
                word,
                text[:200],
            )
    leaked = _keys([json.loads(t) for t in raw]) & RECORD_KEYS
    assert not leaked
