"""A writing socket runs no channel-layer receive, and its consumer ends (and is freed) when it
closes.

The chat's frames travel through framebus; a channel-layer receive per socket only polled
Redis, and a cancelled one sometimes went on polling, so its consumer never ended.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from studyapp.writing.consumers import WritingConsumer
from tests.writing.conftest import db, make_participation, open_client, token_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("drain_generations"),
]


def _layer_receives() -> list[asyncio.Task]:
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").endswith("ChannelLayer.receive")
    ]


async def test_an_open_socket_runs_no_channel_layer_receive(demo_version, settings):
    assert "RedisChannelLayer" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    participation = await db(make_participation, demo_version)
    client, state = await open_client("demo", token_for(participation))
    assert state["type"] == "state"  # the socket works without one

    assert _layer_receives() == []

    await client.close()
    assert client.comm.future.done()  # the consumer ended by itself
    assert not client.comm.future.cancelled()


def _is_consumer(obj: object) -> bool:
    # type(), not isinstance(): isinstance on a dead weakref.proxy among the objects raises.
    return issubclass(type(obj), WritingConsumer)


async def test_a_closed_socket_is_freed_without_the_garbage_collector(demo_version):
    """A cycle through a closed socket's consumer left it, its tasks and its protocol objects
    to the collector, whose pauses under 200 sockets held replies back (bench/README.md)."""
    participation = await db(make_participation, demo_version)
    # Held, not just their ids: a freed one's id could be reused by the new consumer.
    earlier = [o for o in gc.get_objects() if _is_consumer(o)]
    client, _ = await open_client("demo", token_for(participation))
    await client.turn("Help me write a short note")
    [consumer] = [
        o
        for o in gc.get_objects()
        if _is_consumer(o) and not any(o is e for e in earlier)
    ]
    freed = weakref.ref(consumer)
    del consumer
    gc.disable()
    try:
        await client.close()
        for _ in range(5):  # the frame pump's cancellation, the unwatch, the disconnect event
            await asyncio.sleep(0.05)
        assert freed() is None
    finally:
        gc.enable()
