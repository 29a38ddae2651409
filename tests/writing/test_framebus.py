"""The frame bus: live frames to this process's sockets directly, to other processes' through
Redis pub/sub (one channel per process), and "stop" to the process that runs a generation."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.conf import settings

from studyapp.realtime import framebus, framestore
from studyapp.realtime.framestore import MemoryFrameStore, RedisFrameStore
from tests.writing.conftest import db, make_participation, open_client, token_for

pytestmark = pytest.mark.usefixtures("drain_generations")


def _key() -> str:
    return uuid.uuid4().hex


async def _until(predicate, limit_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


class _Listener:
    """Another process's end of the store's pub/sub: what it receives, once subscribed."""

    def __init__(self, store: RedisFrameStore, origin: str) -> None:
        self.frames: list[tuple[str, list[dict]]] = []
        self.stops: list[str] = []
        self.ready = asyncio.Event()

        async def on_ready() -> None:
            self.ready.set()

        def on_frames(key: str, frames: list[dict]) -> None:
            self.frames.append((key, frames))

        self.task = asyncio.ensure_future(
            store.listen(origin, on_ready, on_frames, self.stops.append)
        )

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def store():
    return RedisFrameStore(settings.REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")


async def test_the_store_publishes_to_each_other_watching_process_never_back_to_the_writer(store):
    key = _key()
    here, there = _Listener(store, "here"), _Listener(store, "there")
    try:
        await asyncio.wait_for(asyncio.gather(here.ready.wait(), there.ready.wait()), 5)
        await store.watch(key, "here")
        await store.watch(key, "there")
        start = await store.begin(
            key, {"generation_id": "g", "turn": 1, "origin": "here"}, {"type": "turn_start"},
            origin="here",
        )  # fmt: skip
        deltas = await store.append(
            key, [{"type": "delta", "text": "a"}, {"type": "delta", "text": "b"}], origin="here"
        )
        end = await store.lease_end(key, "g", [{"type": "turn_end", "text": "ab"}], origin="here")
        await _until(lambda: len(there.frames) == 3)
        assert there.frames == [(key, [start]), (key, deltas), (key, end)]
        assert [f["seq"] for _, batch in there.frames for f in batch] == [1, 2, 3, 4]
        await asyncio.sleep(0.1)
        assert here.frames == []  # the writer delivers its own frames itself
    finally:
        await here.close()
        await there.close()


async def test_a_process_that_stopped_watching_gets_nothing_more(store):
    key = _key()
    there = _Listener(store, "there")
    try:
        await asyncio.wait_for(there.ready.wait(), 5)
        await store.watch(key, "there")
        await store.append(key, [{"type": "delta", "text": "seen"}], origin="here")
        await _until(lambda: len(there.frames) == 1)
        await store.unwatch(key, "there")
        await store.append(key, [{"type": "delta", "text": "not seen"}], origin="here")
        await store.stop_send("there", "g-1")  # its own channel still reaches it
        await _until(lambda: there.stops == ["g-1"])
        assert [f["text"] for _, batch in there.frames for f in batch] == ["seen"]
    finally:
        await there.close()


def _use(monkeypatch, store):
    monkeypatch.setattr(framestore, "_store", store)
    return store


@pytest.fixture(params=["redis", "memory"])
def any_store(request, monkeypatch):
    if request.param == "memory":
        return _use(monkeypatch, MemoryFrameStore())
    return _use(monkeypatch, RedisFrameStore(settings.REDIS_URL, prefix=f"test:{_key()}:"))


@pytest.fixture
def redis_store(monkeypatch):
    return _use(monkeypatch, RedisFrameStore(settings.REDIS_URL, prefix=f"test:{_key()}:"))


async def test_a_socket_in_the_writing_process_gets_frames_as_they_are_numbered(any_store):
    key, other = _key(), _key()
    got: list = []
    await framebus.watch(key, got.append)
    numbered = await framebus.publish(key, [{"type": "delta", "text": "x"}])
    assert got == [numbered]  # no pub/sub trip: delivered by the time publish returns
    await framebus.publish(other, [{"type": "delta", "text": "y"}])
    await framebus.unwatch(key, got.append)
    await framebus.publish(key, [{"type": "delta", "text": "z"}])
    await asyncio.sleep(0.05)
    assert got == [numbered]


async def test_frames_numbered_by_another_process_arrive_through_redis(redis_store):
    key = _key()
    got: list = []
    await framebus.watch(key, got.append)
    frames = await redis_store.append(key, [{"type": "delta", "text": "x"}], origin="elsewhere")
    await _until(lambda: got == [frames])


async def test_a_broken_subscription_is_restored_and_every_socket_told_to_resync(redis_store):
    key = _key()
    got: list = []
    await framebus.watch(key, got.append)
    client = redis_store._client()
    watchers = redis_store._keys(key)[3]
    await client.delete(watchers)  # as if Redis had restarted and lost the watcher set
    await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await _until(lambda: got == [None])  # the socket takes what it missed from the store
    assert await client.smembers(watchers) == {framebus._bus().origin}
    frames = await redis_store.append(key, [{"type": "delta", "text": "x"}], origin="elsewhere")
    await _until(lambda: got == [None, frames])


async def test_stop_reaches_a_generation_in_this_process(any_store):
    origin, event = await framebus.stoppable("g-local")
    try:
        await framebus.stop(origin, "g-local")
        assert event.is_set()
    finally:
        framebus.unstoppable("g-local")


async def test_stop_reaches_a_generation_through_its_process_channel(redis_store):
    origin, event = await framebus.stoppable("g-remote")
    try:
        await redis_store.stop_send(origin, "g-remote")  # as another process does
        await asyncio.wait_for(event.wait(), 5)
    finally:
        framebus.unstoppable("g-remote")


@pytest.mark.django_db(transaction=True)
async def test_closed_sockets_leave_nothing_watching(demo_version):
    participation = await db(make_participation, demo_version)
    key = participation.public_id.hex
    store = framestore.frame_store()
    first, _ = await open_client("demo", token_for(participation))
    second, _ = await open_client("demo", token_for(participation))
    bus = framebus._bus()
    assert len(bus.sinks[key]) == 2
    watchers = store._keys(key)[3]
    assert await store._client().smembers(watchers) == {bus.origin}
    await first.close()
    await _until(lambda: len(bus.sinks.get(key, ())) == 1)
    assert await store._client().smembers(watchers) == {bus.origin}  # one socket still here
    await second.close()
    await _until(lambda: key not in bus.sinks)
    assert await store._client().smembers(watchers) == set()


class _SlowMemoryStore(MemoryFrameStore):
    """A store whose writes take a while, as Redis's do under load."""

    async def lease_append(self, *args, **kwargs):
        await asyncio.sleep(0.2)
        return await super().lease_append(*args, **kwargs)


async def test_a_generations_frames_reach_a_socket_once_the_store_holds_them(monkeypatch):
    store = _use(monkeypatch, _SlowMemoryStore())
    key = _key()
    got: list = []
    await framebus.watch(key, got.append)
    lease = await framebus.begin(key, {"generation_id": "g", "turn": 1}, {"type": "turn_start"})
    start = lease.start
    writing = asyncio.ensure_future(lease.append([{"type": "delta", "text": "x"}]))
    await asyncio.sleep(0.01)
    assert got == [[start]]  # not before the store has it
    delta = {"seq": start["seq"] + 1, "epoch": start["epoch"], "type": "delta", "text": "x"}
    assert await writing == [delta]
    assert got == [[start], [delta]]
    assert await store.frames_after(key, start["seq"]) == [delta]
    await lease.end([])
    with pytest.raises(framestore.LeaseLost):  # an ended lease writes nothing more
        await lease.append([{"type": "delta", "text": "y"}])
    await framebus.unwatch(key, got.append)


@pytest.mark.django_db(transaction=True)
async def test_a_socket_that_joins_while_frames_are_written_gets_every_frame_once(
    monkeypatch, demo_version
):
    _use(monkeypatch, _SlowMemoryStore())
    participation = await db(make_participation, demo_version)
    key = participation.public_id.hex
    marker = {"generation_id": "g", "turn": 1}
    lease = await framebus.begin(key, marker, {"type": "turn_start", "turn": 1, "user_text": "Hi"})
    start = lease.start
    first = asyncio.ensure_future(lease.append([{"type": "delta", "text": "a"}]))
    await asyncio.sleep(0.01)  # "a" is being written
    joiner, state = await open_client("demo", token_for(participation))
    second = asyncio.ensure_future(lease.append([{"type": "delta", "text": "b"}]))
    frames = [f for f in await joiner.until(lambda f: f.get("text") == "b") if "seq" in f]
    assert state["generation"] == {"generation_id": "g", "turn": 1}
    assert [f["seq"] for f in frames] == [start["seq"], start["seq"] + 1, start["seq"] + 2]
    assert [f.get("text") for f in frames[1:]] == ["a", "b"]
    await asyncio.gather(first, second)
    await lease.end([])
    await joiner.close()
