"""The replay buffer behind the relay: numbered frames and the generation in flight.

Every frame a generation publishes (turn_start, delta, turn_end, ...) gets a sequence number
that is per participation and monotonic across turns, and is appended here before it is sent
to the participation's channel-layer group. A client that reconnects (maybe to another ASGI
process) replays what it missed from here, so the store must be shared between processes:
Redis when ``REDIS_URL`` is set, a dict in this process otherwise (the embedded ``make run``).

The buffer only holds the latest generation's frames: once a turn has ended it is in the
database, which is where a reconnecting client reads finished turns from.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings

Frame = dict[str, Any]

# How long a generation marker lives without being refreshed. A generator refreshes it with
# every frame (and at least every few seconds), so an expired marker means its process died.
GENERATION_TTL_S = 30
FRAMES_TTL_S = 2 * 3600
# The counter must outlive any session so seq numbers never go back for a participation.
SEQ_TTL_S = 3 * 24 * 3600


@dataclass(frozen=True)
class Snapshot:
    """What the store holds for one participation, read at one instant."""

    generation: dict[str, Any] | None
    frames: list[Frame] = field(default_factory=list)

    @property
    def tail(self) -> int:
        return self.frames[-1]["seq"] if self.frames else 0


class FrameStore(Protocol):
    async def begin(self, key: str, generation: dict[str, Any], frame: Frame) -> Frame:
        """Start a generation: number ``frame``, make it the whole buffer, mark the generation
        in flight (with ``start_seq``) and return the numbered frame."""
        ...

    async def append(self, key: str, frames: list[Frame]) -> list[Frame]:
        """Number and append frames; keeps the generation marker alive."""
        ...

    async def end(self, key: str, generation_id: str, frames: list[Frame]) -> list[Frame]:
        """Number and append the closing frames; clear the marker if ``generation_id`` owns it."""
        ...

    async def touch(self, key: str) -> None:
        """Keep the generation marker alive while a model is slow to answer."""
        ...

    async def generation(self, key: str) -> dict[str, Any] | None: ...

    async def snapshot(self, key: str) -> Snapshot: ...

    async def frames_after(self, key: str, seq: int) -> list[Frame]: ...


class MemoryFrameStore:
    """One process's store, for the embedded set-up without Redis."""

    def __init__(self) -> None:
        self._seq: dict[str, int] = {}
        self._frames: dict[str, list[Frame]] = {}
        self._generation: dict[str, tuple[dict[str, Any], float]] = {}

    def _number(self, key: str, frames: list[Frame]) -> list[Frame]:
        out = []
        for frame in frames:
            self._seq[key] = self._seq.get(key, 0) + 1
            out.append({**frame, "seq": self._seq[key]})
        return out

    async def begin(self, key: str, generation: dict[str, Any], frame: Frame) -> Frame:
        (numbered,) = self._number(key, [frame])
        self._frames[key] = [numbered]
        marker = {**generation, "start_seq": numbered["seq"]}
        self._generation[key] = (marker, time.monotonic() + GENERATION_TTL_S)
        return numbered

    async def append(self, key: str, frames: list[Frame]) -> list[Frame]:
        numbered = self._number(key, frames)
        self._frames.setdefault(key, []).extend(numbered)
        await self.touch(key)
        return numbered

    async def end(self, key: str, generation_id: str, frames: list[Frame]) -> list[Frame]:
        numbered = self._number(key, frames)
        self._frames.setdefault(key, []).extend(numbered)
        current = await self.generation(key)
        if current and current["generation_id"] == generation_id:
            del self._generation[key]
        return numbered

    async def touch(self, key: str) -> None:
        if key in self._generation:
            marker, _ = self._generation[key]
            self._generation[key] = (marker, time.monotonic() + GENERATION_TTL_S)

    async def generation(self, key: str) -> dict[str, Any] | None:
        entry = self._generation.get(key)
        if entry is None or entry[1] < time.monotonic():
            return None
        return dict(entry[0])

    async def snapshot(self, key: str) -> Snapshot:
        return Snapshot(await self.generation(key), list(self._frames.get(key, [])))

    async def frames_after(self, key: str, seq: int) -> list[Frame]:
        return [f for f in self._frames.get(key, []) if f["seq"] > seq]


# Compare-and-delete, so a late ``end`` can never clear a newer generation's marker.
_CLEAR_IF_OWNED = """
if redis.call('HGET', KEYS[1], 'generation_id') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisFrameStore:
    """The shared store: per participation a seq counter, a list of frames and a marker hash.

    Frames are stored as JSON strings; the marker is a hash whose TTL is the liveness of the
    generation that owns it.
    """

    def __init__(self, url: str, prefix: str = "collabstudy:relay:") -> None:
        self._url = url
        self._prefix = prefix
        # redis.asyncio connections belong to the event loop that opened them.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = redis.Redis.from_url(self._url, decode_responses=True)
            self._clients[loop] = client
        return client

    def _keys(self, key: str) -> tuple[str, str, str]:
        base = self._prefix + key
        return f"{base}:seq", f"{base}:frames", f"{base}:gen"

    async def _number(self, key: str, frames: list[Frame]) -> list[Frame]:
        seq_key, _, _ = self._keys(key)
        last = await self._client().incrby(seq_key, len(frames))
        first = last - len(frames) + 1
        return [{**frame, "seq": first + i} for i, frame in enumerate(frames)]

    async def begin(self, key: str, generation: dict[str, Any], frame: Frame) -> Frame:
        seq_key, frames_key, gen_key = self._keys(key)
        (numbered,) = await self._number(key, [frame])
        marker = {**generation, "start_seq": numbered["seq"]}
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.delete(frames_key, gen_key)
            pipe.rpush(frames_key, json.dumps(numbered))
            pipe.expire(frames_key, FRAMES_TTL_S)
            pipe.hset(gen_key, mapping={k: json.dumps(v) for k, v in marker.items()})
            # The generation id is also stored raw for the compare-and-delete script.
            pipe.hset(gen_key, "generation_id", marker["generation_id"])
            pipe.expire(gen_key, GENERATION_TTL_S)
            pipe.expire(seq_key, SEQ_TTL_S)
            await pipe.execute()
        return numbered

    async def append(self, key: str, frames: list[Frame]) -> list[Frame]:
        _, frames_key, gen_key = self._keys(key)
        numbered = await self._number(key, frames)
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.rpush(frames_key, *[json.dumps(f) for f in numbered])
            pipe.expire(gen_key, GENERATION_TTL_S)
            await pipe.execute()
        return numbered

    async def end(self, key: str, generation_id: str, frames: list[Frame]) -> list[Frame]:
        _, frames_key, gen_key = self._keys(key)
        numbered = await self._number(key, frames) if frames else []
        client = self._client()
        async with client.pipeline(transaction=True) as pipe:
            if numbered:
                pipe.rpush(frames_key, *[json.dumps(f) for f in numbered])
                pipe.expire(frames_key, FRAMES_TTL_S)
            pipe.eval(_CLEAR_IF_OWNED, 1, gen_key, generation_id)
            await pipe.execute()
        return numbered

    async def touch(self, key: str) -> None:
        _, _, gen_key = self._keys(key)
        await self._client().expire(gen_key, GENERATION_TTL_S)

    @staticmethod
    def _marker(raw: dict[str, str]) -> dict[str, Any] | None:
        if not raw:
            return None
        marker = {k: json.loads(v) for k, v in raw.items() if k != "generation_id"}
        marker["generation_id"] = raw["generation_id"]
        return marker

    async def generation(self, key: str) -> dict[str, Any] | None:
        _, _, gen_key = self._keys(key)
        return self._marker(await self._client().hgetall(gen_key))

    async def snapshot(self, key: str) -> Snapshot:
        _, frames_key, gen_key = self._keys(key)
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.hgetall(gen_key)
            pipe.lrange(frames_key, 0, -1)
            raw_gen, raw_frames = await pipe.execute()
        return Snapshot(self._marker(raw_gen), [json.loads(f) for f in raw_frames])

    async def frames_after(self, key: str, seq: int) -> list[Frame]:
        _, frames_key, _ = self._keys(key)
        frames = [json.loads(f) for f in await self._client().lrange(frames_key, 0, -1)]
        return [f for f in frames if f["seq"] > seq]


_store: FrameStore | None = None


def frame_store() -> FrameStore:
    """The process's store: Redis when ``settings.REDIS_URL`` is set, else in memory."""
    global _store
    if _store is None:
        url = settings.REDIS_URL
        _store = RedisFrameStore(url) if url else MemoryFrameStore()
    return _store
