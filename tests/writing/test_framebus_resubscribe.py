"""The frame bus after its pub/sub connection is cut (studyapp/realtime/framebus.py): it logs
the loss as one WARNING line, resubscribes, tells its sockets to resync from the store, and
the frames another process publishes reach this process again.

The connection is cut with ``CLIENT KILL TYPE pubsub`` on a redis-server of this test's own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from studyapp.realtime import framebus
from studyapp.realtime.framestore import Frame, RedisFrameStore

pytestmark = pytest.mark.usefixtures("drain_generations")


async def _until(got: list[list[Frame] | None], predicate, limit_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not any(predicate(batch) for batch in got):
        assert asyncio.get_running_loop().time() < deadline, f"timed out; got {got}"
        await asyncio.sleep(0.01)


def _has_text(text: str):
    return lambda batch: batch is not None and any(f.get("text") == text for f in batch)


async def test_a_killed_subscription_is_one_warning_and_frames_flow_again(private_redis, caplog):
    key = uuid.uuid4().hex
    got: list[list[Frame] | None] = []
    await framebus.watch(key, got.append)
    elsewhere = RedisFrameStore(private_redis.url)  # another process's store
    await elsewhere.append(key, [{"type": "delta", "text": "before"}], origin="elsewhere")
    await _until(got, _has_text("before"))

    caplog.set_level(logging.INFO, logger="studyapp.realtime.framebus")
    assert int(private_redis.cli("CLIENT", "KILL", "TYPE", "pubsub")) == 1
    await _until(got, lambda batch: batch is None)  # resubscribed: "resync from the store"

    await elsewhere.append(key, [{"type": "delta", "text": "after"}], origin="elsewhere")
    await _until(got, _has_text("after"))
    await framebus.unwatch(key, got.append)

    records = [r for r in caplog.records if r.name == "studyapp.realtime.framebus"]
    assert [r.levelno for r in records if r.levelno >= logging.WARNING] == [logging.WARNING]
    assert all(r.exc_info is None for r in records)  # no traceback
