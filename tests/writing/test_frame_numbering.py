"""Every frame of a participation is numbered in one place, whoever writes it: a reply's
frames (through its lease) and the frames another process publishes (a rating given, a saved
document, a side-by-side pick) never share a ``seq``. Only the lease of the generation in
flight writes its frames: one claimed as lost writes nothing more."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.conf import settings

from studyapp.realtime import framebus, framestore
from studyapp.realtime.framestore import LeaseLost, RedisFrameStore

pytestmark = pytest.mark.usefixtures("drain_generations")


@pytest.fixture
def store(monkeypatch):
    store = RedisFrameStore(settings.REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    monkeypatch.setattr(framestore, "_store", store)
    return store


async def test_a_reply_and_another_process_racing_never_take_the_same_seq(store):
    key = uuid.uuid4().hex
    elsewhere = RedisFrameStore(settings.REDIS_URL, prefix=store._prefix)  # its own client
    marker = {"generation_id": "g", "turn": 1}
    lease = await framebus.begin(key, marker, {"type": "turn_start", "turn": 1})

    async def reply() -> None:
        for i in range(20):
            await lease.append([{"type": "delta", "text": f"d{i}"}])

    async def saves() -> None:
        for version in range(20):
            frame = {"type": "doc_version", "version": version}
            await elsewhere.append(key, [frame], origin="elsewhere")

    await asyncio.gather(reply(), saves())
    await lease.end([{"type": "turn_end", "turn": 1}])
    frames = (await store.snapshot(key)).frames
    assert len(frames) == 42
    assert [f["seq"] for f in frames] == list(range(1, 43))
    assert [f["text"] for f in frames if f["type"] == "delta"] == [f"d{i}" for i in range(20)]
    assert [f["version"] for f in frames if f["type"] == "doc_version"] == list(range(20))


async def test_a_reply_claimed_as_lost_while_its_process_still_runs_writes_nothing_more(
    store, monkeypatch
):
    monkeypatch.setattr(framestore, "GENERATION_TTL_S", 1)
    key = uuid.uuid4().hex
    start = {"type": "turn_start", "turn": 1, "generation_id": "g"}
    lease = await framebus.begin(key, {"generation_id": "g", "turn": 1}, start)
    await lease.append([{"type": "delta", "text": "Half a"}])
    await asyncio.sleep(1.2)  # too slow to refresh its marker: taken for dead
    elsewhere = RedisFrameStore(settings.REDIS_URL, prefix=store._prefix)
    assert key in await elsewhere.lost([key])  # another process claims it and ends it
    await elsewhere.end_lost(key, "g", [{"type": "turn_error", "turn": 1}], origin="elsewhere")
    with pytest.raises(LeaseLost):
        await lease.append([{"type": "delta", "text": " reply"}])
    with pytest.raises(LeaseLost):
        await lease.end([{"type": "turn_end", "turn": 1}])
    frames = (await store.snapshot(key)).frames
    assert [f["type"] for f in frames] == ["turn_start", "delta", "turn_error"]
