"""The local transformers backend, on a tiny random-weight Llama built here (no downloads)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from collab_models.arms import build_arm
from collab_models.base import ChatMessage

pytestmark = pytest.mark.usefixtures("hf_offline")

HISTORY: list[ChatMessage] = [{"role": "user", "content": "write a short story about the garden"}]


def arm_config(path: Path, **sampling: object) -> dict[str, object]:
    return {
        "name": "local",
        "backend": "transformers",
        "model": str(path),
        "device": "cpu",
        "sampling": {"temperature": 0.0, "max_tokens": 12, **sampling},
    }


async def test_streams_a_reply_with_a_full_record(tiny_model: Path) -> None:
    arm = build_arm(arm_config(tiny_model))

    stream = arm.reply(HISTORY)
    deltas = [d async for d in stream]

    assert len(deltas) >= 3
    record = stream.record
    assert record is not None
    assert record.text == "".join(deltas)
    assert record.text.strip()
    assert not any(s in record.text for s in ("<s>", "</s>", "[PAD]"))
    assert record.backend == "transformers"
    assert record.model == str(tiny_model)
    assert record.completion_tokens == 12
    assert record.finish_reason == "length"
    assert record.prompt_tokens is not None
    assert record.prompt_tokens > 5
    assert record.ttft_ms is not None
    assert record.duration_ms is not None
    assert record.prompt_version == "none"
    assert record.endpoint == "local:cpu"


async def test_greedy_replies_repeat_and_seeded_sampling_works(tiny_model: Path) -> None:
    arm = build_arm(arm_config(tiny_model))
    first = "".join([d async for d in arm.reply(HISTORY)])
    second = "".join([d async for d in arm.reply(HISTORY)])
    assert first == second

    sampled = build_arm(arm_config(tiny_model, temperature=1.0, top_p=0.9))
    one = "".join([d async for d in sampled.reply(HISTORY, seed=4)])
    two = "".join([d async for d in sampled.reply(HISTORY, seed=4)])
    assert one == two


async def test_cancel_stops_generation(tiny_model: Path) -> None:
    arm = build_arm(arm_config(tiny_model, max_tokens=200))
    stream = arm.reply(HISTORY)

    got = []
    async for delta in stream:
        got.append(delta)
        if len(got) == 2:
            break
    await stream.aclose()

    record = stream.record
    assert record is not None
    assert record.finish_reason == "cancelled"
    assert record.text == "".join(got)
    # The generation thread sees the cancel flag at its next token and ends.
    import threading

    for _ in range(100):
        if not any(t.name == "collab-models-generate" for t in threading.enumerate()):
            break
        await asyncio.sleep(0.02)
    assert not any(t.name == "collab-models-generate" for t in threading.enumerate())


async def test_missing_model_is_a_permanent_error(tmp_path: Path) -> None:
    from collab_models.base import ModelError

    stream = build_arm(arm_config(tmp_path / "absent")).reply(HISTORY)
    with pytest.raises(ModelError) as info:
        [_ async for _ in stream]
    assert info.value.permanent
    assert "cannot load model" in str(info.value)


async def test_a_lora_adapter_is_applied_with_peft(tiny_model: Path, tiny_adapter: Path) -> None:
    import json

    assert json.loads((tiny_adapter / "adapter_config.json").read_text())["r"] == 4
    base = "".join([d async for d in build_arm(arm_config(tiny_model)).reply(HISTORY)])
    stream = build_arm({**arm_config(tiny_model), "adapter": str(tiny_adapter)}).reply(HISTORY)
    adapted = "".join([d async for d in stream])

    assert adapted.strip()
    assert adapted != base  # the adapter's weights take part
    assert stream.record is not None
    assert stream.record.adapter == str(tiny_adapter)
    assert stream.record.completion_tokens == 12


async def test_a_missing_adapter_is_a_permanent_error(tiny_model: Path, tmp_path: Path) -> None:
    from collab_models.base import ModelError

    arm = build_arm({**arm_config(tiny_model), "adapter": str(tmp_path / "none")})
    with pytest.raises(ModelError) as failure:
        async for _ in arm.reply(HISTORY):
            pass
    assert failure.value.permanent
    assert "cannot load adapter" in str(failure.value)
