"""The replay buffer, in both forms: Redis (shared by processes) and in-process memory."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.conf import settings

from studyapp.realtime import framestore
from studyapp.realtime.framestore import LeaseLost, MemoryFrameStore, RedisFrameStore


@pytest.fixture(params=["redis", "memory"])
def store(request):
    if request.param == "redis":
        return RedisFrameStore(settings.REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    return MemoryFrameStore()


def _marker(generation_id: str, turn: int = 1) -> dict:
    return {"generation_id": generation_id, "turn": turn, "origin": "4242-ab12"}


async def test_frames_are_numbered_per_key_and_monotonic_across_generations(store):
    start = await store.begin("p1", _marker("g1"), {"type": "turn_start", "turn": 1})
    deltas = await store.append(
        "p1", [{"type": "delta", "text": "a"}, {"type": "delta", "text": "b"}]
    )
    end = await store.lease_end("p1", "g1", [{"type": "turn_end", "turn": 1}])
    assert [start["seq"], *[d["seq"] for d in deltas], end[0]["seq"]] == [1, 2, 3, 4]
    other = await store.begin("p2", _marker("g9"), {"type": "turn_start", "turn": 1})
    assert other["seq"] == 1  # another participation has its own counter
    second = await store.begin("p1", _marker("g2", 2), {"type": "turn_start", "turn": 2})
    assert second["seq"] == 5


async def test_frames_carry_their_counters_epoch(store):
    start = await store.begin("p", _marker("g1"), {"type": "turn_start", "turn": 1})
    (delta,) = await store.append("p", [{"type": "delta", "text": "a"}])
    (end,) = await store.lease_end("p", "g1", [{"type": "turn_end", "turn": 1}])
    second = await store.begin("p", _marker("g2", 2), {"type": "turn_start", "turn": 2})
    assert {delta["epoch"], end["epoch"], second["epoch"]} == {start["epoch"]}
    assert (await store.snapshot("p")).epoch == start["epoch"]
    assert (await store.snapshot("nobody")).epoch is None


async def test_a_new_generation_replaces_the_buffer_and_marks_itself_in_flight(store):
    await store.begin("p", _marker("g1"), {"type": "turn_start", "turn": 1})
    await store.append("p", [{"type": "delta", "text": "x"}])
    await store.lease_end("p", "g1", [{"type": "turn_end", "turn": 1}])
    assert await store.generation("p") is None
    await store.begin("p", _marker("g2", 2), {"type": "turn_start", "turn": 2})
    await store.append("p", [{"type": "delta", "text": "y"}])
    snapshot = await store.snapshot("p")
    assert [f["seq"] for f in snapshot.frames] == [4, 5]
    assert snapshot.tail == 5
    assert snapshot.generation == {
        "generation_id": "g2", "turn": 2, "origin": "4242-ab12", "start_seq": 4,
    }  # fmt: skip
    assert [f["text"] for f in await store.frames_after("p", 4)] == ["y"]


async def test_only_the_generation_in_flight_may_end_it(store):
    await store.begin("p", _marker("g1"), {"type": "turn_start", "turn": 1})
    with pytest.raises(LeaseLost):
        await store.lease_end("p", "someone-else", [{"type": "turn_end", "turn": 1}])
    with pytest.raises(LeaseLost):
        await store.lease_append("p", "someone-else", [{"type": "delta", "text": "x"}])
    assert (await store.generation("p"))["generation_id"] == "g1"
    assert (await store.snapshot("p")).tail == 1  # nothing written
    await store.lease_end("p", "g1", [])
    assert await store.generation("p") is None


async def test_an_unrefreshed_marker_expires(store, monkeypatch):
    """A generation whose process died stops counting as in flight."""
    monkeypatch.setattr(framestore, "GENERATION_TTL_S", 1)
    await store.begin("p", _marker("g1"), {"type": "turn_start", "turn": 1})
    assert await store.generation("p") is not None
    await asyncio.sleep(1.2)
    assert await store.generation("p") is None
    # The frames survive the marker: a reconnect can still show what was streamed.
    assert len((await store.snapshot("p")).frames) == 1


async def test_an_empty_store_has_no_generation_and_tail_zero(store):
    snapshot = await store.snapshot("nobody")
    assert snapshot.generation is None
    assert snapshot.frames == []
    assert snapshot.tail == 0


async def test_concurrent_appends_are_numbered_once_each_and_kept_in_order(store):
    batches = await asyncio.gather(
        *(store.append("p", [{"type": "delta", "text": str(i)}]) for i in range(60))
    )
    seqs = sorted(frame["seq"] for batch in batches for frame in batch)
    assert seqs == list(range(1, 61))
    kept = await store.frames_after("p", 0)
    assert [f["seq"] for f in kept] == seqs
    by_seq = {frame["seq"]: frame["text"] for batch in batches for frame in batch}
    assert [f["text"] for f in kept] == [by_seq[s] for s in seqs]


async def test_scripts_that_redis_forgot_are_loaded_again():
    store = RedisFrameStore(settings.REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    (first,) = await store.append("p", [{"type": "delta", "text": "a"}])
    await store._client().script_flush()  # as after a Redis restart
    frames = await store.append("p", [{"type": "delta", "text": "b"}])
    assert frames == [{"seq": 2, "epoch": first["epoch"], "type": "delta", "text": "b"}]


async def test_a_generation_and_other_writers_are_numbered_by_one_counter(store):
    start = await store.begin("p", _marker("g1"), {"type": "turn_start", "turn": 1})
    epoch = start["epoch"]
    deltas = await store.lease_append(
        "p", "g1", [{"type": "delta", "text": "a"}, {"type": "delta", "text": "b"}],
        epoch=epoch, last_seq=start["seq"],
    )  # fmt: skip
    (given,) = await store.append("p", [{"type": "rating_given", "turn": 1}])
    (delta,) = await store.lease_append(
        "p", "g1", [{"type": "delta", "text": "c"}], epoch=epoch, last_seq=3
    )
    end = await store.lease_end("p", "g1", [{"type": "turn_end", "turn": 1}])
    assert [d["seq"] for d in deltas] == [2, 3]
    assert (given["seq"], delta["seq"], end[0]["seq"]) == (4, 5, 6)
    assert await store.generation("p") is None
    assert [f["seq"] for f in await store.frames_after("p", 0)] == [1, 2, 3, 4, 5, 6]
    second = await store.begin("p", _marker("g2", 2), {"type": "turn_start", "turn": 2})
    assert second["seq"] == 7


async def test_a_generation_replaced_by_a_newer_one_writes_nothing_more(store, monkeypatch):
    monkeypatch.setattr(framestore, "GENERATION_TTL_S", 1)
    await store.begin("p", _marker("g1"), {"type": "turn_start", "turn": 1, "generation_id": "g1"})
    await asyncio.sleep(1.2)  # its marker expired: a newer generation may begin
    # Until then it may still write (a slow process, not a dead one).
    await store.lease_append("p", "g1", [{"type": "delta", "text": "late"}])
    await asyncio.sleep(1.2)
    start = {"type": "turn_start", "turn": 1, "generation_id": "g2"}
    await store.begin("p", _marker("g2"), start)
    with pytest.raises(LeaseLost):
        await store.lease_append("p", "g1", [{"type": "delta", "text": "stale"}])
    await store.lease_end("p", "g2", [])  # the newer one has ended too: g1 still may not
    with pytest.raises(LeaseLost):
        await store.lease_end("p", "g1", [{"type": "turn_end", "turn": 1}])
    assert [f["type"] for f in (await store.snapshot("p")).frames] == ["turn_start"]


async def _lost_generation(store, monkeypatch, key: str = "p", generation_id: str = "g1") -> None:
    """A generation begun, streamed a little, then left by its process (its marker expires)."""
    monkeypatch.setattr(framestore, "GENERATION_TTL_S", 1)
    start = {"type": "turn_start", "turn": 1, "generation_id": generation_id}
    await store.begin(key, _marker(generation_id), start)
    await store.append(key, [{"type": "delta", "text": "Half a"}])
    await asyncio.sleep(1.2)


async def test_a_generation_in_flight_or_ended_is_not_lost(store):
    await store.begin("p", _marker("g1"), {"type": "turn_start", "turn": 1, "generation_id": "g1"})
    assert await store.lost(["p", "nobody"]) == {}
    await store.lease_end("p", "g1", [{"type": "turn_end", "turn": 1}, {"type": "rating_due"}])
    assert await store.lost(["p"]) == {}
    assert await store.end_lost("p", "g1", [{"type": "turn_error", "turn": 1}]) is None


async def test_a_lost_generation_is_claimed_by_one_caller_and_ended_once(store, monkeypatch):
    await _lost_generation(store, monkeypatch)
    claims = await asyncio.gather(*(store.lost(["p"]) for _ in range(5)))
    claimed = [c["p"] for c in claims if c]
    assert len(claimed) == 1
    assert [f["type"] for f in claimed[0]] == ["turn_start", "delta"]
    ends = await asyncio.gather(
        *(store.end_lost("p", "g1", [{"type": "turn_error", "turn": 1}]) for _ in range(5))
    )
    epoch = claimed[0][0]["epoch"]  # the end is numbered in the lost generation's epoch
    assert [e for e in ends if e] == [[{"seq": 3, "epoch": epoch, "type": "turn_error", "turn": 1}]]
    assert await store.lost(["p"]) == {}  # ended: nothing left to claim
    with pytest.raises(LeaseLost):  # its own process, if it still runs, writes nothing more
        await store.lease_end("p", "g1", [{"type": "turn_end", "turn": 1}])


async def test_a_lost_generation_replaced_by_a_newer_one_is_not_ended(store, monkeypatch):
    await _lost_generation(store, monkeypatch)
    assert await store.lost(["p"])
    start = {"type": "turn_start", "turn": 1, "generation_id": "g2"}
    await store.begin("p", _marker("g2"), start)
    assert await store.end_lost("p", "g1", [{"type": "turn_error", "turn": 1}]) is None
    assert [f["generation_id"] for f in (await store.snapshot("p")).frames] == ["g2"]
