"""Reply streams handing each delta to a listener as it arrives (``deliver_to``), the relay's
way of reading a model: the same text and records as iterating, without a task per delta."""

from __future__ import annotations

import asyncio
import json

import pytest

from collab_models.arms import build_arm
from collab_models.base import ModelError, TurnRecord
from collab_models.streaming import ProducerStream
from tests.collab_models.conftest import MODEL
from tests.collab_models.test_arms import HISTORY, PROACTIVE_REPLY, proactive_config
from tests.collab_models.vllm_fake import FakeVLLM, Script


def draft() -> TurnRecord:
    return TurnRecord(text="", raw_output="", backend="test", model="m")


async def test_a_delta_reaches_the_listener_inside_emit() -> None:
    """No hop through a queue and the consumer's task: the listener has each delta by the time
    ``emit`` returns."""
    seen_at_emit: list[list[str]] = []
    received: list[str] = []

    async def produce(stream: ProducerStream) -> None:
        for token in ("one ", "two ", "three"):
            stream.emit(token)
            seen_at_emit.append(list(received))
            await asyncio.sleep(0)

    stream = ProducerStream(produce, draft())
    await stream.deliver_to(received.append)

    assert seen_at_emit == [["one "], ["one ", "two "], ["one ", "two ", "three"]]
    assert stream.record is not None
    assert stream.record.text == "one two three"
    assert stream.record.finish_reason == "stop"


async def test_deltas_emitted_before_delivery_began_come_first_in_order() -> None:
    gate = asyncio.Event()

    async def produce(stream: ProducerStream) -> None:
        stream.emit("a")
        stream.emit("b")
        await gate.wait()
        stream.emit("c")

    stream = ProducerStream(produce, draft())
    stream.start()
    await asyncio.sleep(0.01)  # "a" and "b" are queued: nobody listens yet
    received: list[str] = []
    delivery = asyncio.ensure_future(stream.deliver_to(received.append))
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.wait_for(delivery, 2)

    assert received == ["a", "b", "c"]
    assert stream.record is not None
    assert stream.record.text == "abc"


async def test_a_listener_that_raises_fails_the_turn_and_stops_the_producer() -> None:
    stopped = asyncio.Event()

    async def produce(stream: ProducerStream) -> None:
        try:
            for i in range(100):
                stream.emit(f"w{i} ")
                await asyncio.sleep(0.001)
        finally:
            stopped.set()

    def listener(delta: str) -> None:
        if delta == "w2 ":
            raise ValueError("broken consumer")

    stream = ProducerStream(produce, draft())
    with pytest.raises(ModelError, match="ValueError: broken consumer"):
        await stream.deliver_to(listener)

    await asyncio.wait_for(stopped.wait(), 2)
    assert stream.record is not None
    assert stream.record.finish_reason == "error"
    assert stream.record.text == "w0 w1 w2 "


async def test_a_listener_that_raises_on_a_queued_delta_fails_the_turn() -> None:
    """The producer has finished before delivery begins: its deltas and its end are queued."""

    async def produce(stream: ProducerStream) -> None:
        stream.emit("a")
        stream.emit("b")

    def listener(delta: str) -> None:
        if delta == "b":
            raise ValueError("broken consumer")

    stream = ProducerStream(produce, draft())
    stream.start()
    await asyncio.sleep(0.01)
    with pytest.raises(ModelError, match="ValueError: broken consumer"):
        await stream.deliver_to(listener)

    assert stream.record is not None
    assert stream.record.finish_reason == "error"


async def test_proactive_arm_delivers_the_same_plain_text_as_iterating(fake: FakeVLLM) -> None:
    raw = json.dumps(PROACTIVE_REPLY)
    tokens = [raw[i : i + 6] for i in range(0, len(raw), 6)]
    arm = build_arm(proactive_config(fake.url))

    fake.script(Script(tokens=tokens))
    iterated = arm.reply(HISTORY, seed=11)
    by_iteration = [delta async for delta in iterated]
    fake.script(Script(tokens=tokens))
    delivered = arm.reply(HISTORY, seed=11)
    by_listener: list[str] = []
    await delivered.deliver_to(by_listener.append)

    assert "".join(by_listener) == "".join(by_iteration) == PROACTIVE_REPLY["response"]
    assert len(by_listener) > 1  # it streamed
    assert delivered.record is not None
    assert iterated.record is not None
    assert delivered.record.text == iterated.record.text
    assert delivered.record.raw_output == iterated.record.raw_output == raw
    assert delivered.record.prompt_version == iterated.record.prompt_version != ""


async def test_a_model_error_mid_stream_is_raised_with_the_partial_text(fake: FakeVLLM) -> None:
    fake.script(Script(text="a b c d", cut_after=2))
    stream = build_arm({"name": "base", "endpoints": [fake.url], "model": MODEL}).reply(HISTORY)
    received: list[str] = []

    with pytest.raises(ModelError):
        await stream.deliver_to(received.append)

    assert stream.record is not None
    assert stream.record.finish_reason == "error"
    assert stream.record.text == "".join(received) == "a b"


async def test_closing_the_stream_ends_delivery_and_the_request(fake: FakeVLLM) -> None:
    fake.script(Script(text=" ".join(f"w{i}" for i in range(200)), tps=100))
    stream = build_arm({"name": "base", "endpoints": [fake.url], "model": MODEL}).reply(HISTORY)
    received: list[str] = []
    three = asyncio.Event()

    def listener(delta: str) -> None:
        received.append(delta)
        if len(received) == 3:
            three.set()

    delivery = asyncio.ensure_future(stream.deliver_to(listener))
    await asyncio.wait_for(three.wait(), 5)

    await stream.aclose()
    await asyncio.wait_for(delivery, 2)

    assert stream.record is not None
    assert stream.record.finish_reason == "cancelled"
    assert stream.record.text == "".join(received)
    assert await fake.wait_for(lambda: fake.disconnects == 1)
