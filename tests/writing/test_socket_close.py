"""A writing socket runs no channel-layer receive, and its consumer ends when it closes.

The chat's frames travel through framebus; a channel-layer receive per socket only polled
Redis, and a cancelled one sometimes went on polling, so its consumer never ended.
"""

from __future__ import annotations

import asyncio

import pytest

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
