"""The replay buffer behind the relay: numbered frames and the generation in flight.

Every frame a generation publishes (turn_start, delta, turn_end, ...) gets a sequence number
that is per participation and monotonic across turns, and is appended here before it is
delivered live (studyapp/realtime/framebus.py). A client that reconnects (maybe to another ASGI
process) replays what it missed from here, so the store must be shared between processes:
Redis when ``REDIS_URL`` is set, a dict in this process otherwise (the embedded ``make run``).
The Redis store also carries frames live between processes: the script that numbers a batch
publishes it to every other process that watches the participation.

The buffer only holds the latest generation's frames: once a turn has ended it is in the
database, which is where a reconnecting client reads finished turns from.

Redis may lose the counter (a restart without persistence, an expired key) or roll it back (a
snapshot, the append-only file's last second, a failover to a lagging replica), and numbers
would then repeat what sockets already hold. So the counter has an *epoch*, a random id that
every frame carries beside its ``seq``: a frame's position is ``(epoch, seq)``. The Redis
counter also records the run of Redis (its ``run_id``) that last vouched for it; a script that
finds no counter, or one from before Redis's latest start, begins a new epoch at seq 1 and
clears the buffer. A reader that meets a frame of another epoch than its own starts over from
the store instead of comparing numbers (studyapp/writing/consumers.py). The in-memory store
lives and dies with its sockets, so its epochs never change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as redis
from django.conf import settings

from studyapp.realtime.scriptpipe import RedisPyScripts, ScriptPipe

Frame = dict[str, Any]
Ready = Callable[[], Awaitable[None]]
Receiver = Callable[[str, list[Frame]], None]
Stop = Callable[[str], object]

# How long a generation marker lives without being refreshed. A generator refreshes it with
# every frame (and at least every few seconds), so an expired marker means its process died.
GENERATION_TTL_S = int(getattr(settings, "GENERATION_TTL_S", 30))
FRAMES_TTL_S = 2 * 3600
# The counter outlives any session: one that expires begins a new epoch, which makes every open
# socket of the participation send its page a fresh state.
SEQ_TTL_S = 3 * 24 * 3600
REDIS_POOL_SIZE = 64  # connections per event loop
# How long one process holds the claim to resolve a lost generation (record it, end it): past
# this, a process that died while resolving it is replaced by the next one that notices.
LOST_CLAIM_S = 600
# The frames that open a generation in the buffer, and those that end it.
START_TYPES = frozenset({"turn_start", "pair_start"})
END_TYPES = frozenset({"turn_end", "turn_error", "turn_withdrawn", "pair_end"})


class GenerationBusy(Exception):
    """Another generation of this participation is in flight."""


@dataclass(frozen=True)
class Snapshot:
    """What the store holds for one participation, read at one instant."""

    generation: dict[str, Any] | None
    frames: list[Frame] = field(default_factory=list)  # all of ``epoch``
    epoch: str | None = None  # the counter's, None before its first frame

    @property
    def tail(self) -> int:
        return self.frames[-1]["seq"] if self.frames else 0


class FrameStore(Protocol):
    async def begin(
        self, key: str, generation: dict[str, Any], frame: Frame, *, origin: str = ""
    ) -> Frame:
        """Start a generation: number ``frame`` (``seq`` and ``epoch``), make it the whole
        buffer, mark the generation in flight (with ``start_seq``) and return the numbered
        frame. Raises :class:`GenerationBusy` (and changes nothing) while another one is marked
        in flight."""
        ...

    async def append(
        self,
        key: str,
        frames: list[Frame],
        *,
        origin: str = "",
        first_seq: int | None = None,
        epoch: str | None = None,
    ) -> list[Frame]:
        """Number and append frames; keeps the generation marker alive. ``origin``, the calling
        process, is the one watcher the frames are not published to (it delivers them itself).
        With ``first_seq`` the caller has numbered them (from there on, in ``epoch``): the
        generation in flight numbers its own frames (studyapp/realtime/framebus.py)."""
        ...

    async def end(
        self,
        key: str,
        generation_id: str,
        frames: list[Frame],
        *,
        origin: str = "",
        first_seq: int | None = None,
        epoch: str | None = None,
    ) -> list[Frame]:
        """Number (or take ``first_seq`` and ``epoch`` as for :meth:`append`) and append the
        closing frames; clear the marker if ``generation_id`` owns it."""
        ...

    async def touch(self, key: str) -> None:
        """Keep the generation marker alive while a model is slow to answer."""
        ...

    async def generation(self, key: str) -> dict[str, Any] | None: ...

    async def snapshot(self, key: str) -> Snapshot: ...

    async def frames_after(self, key: str, seq: int) -> list[Frame]: ...

    async def watch(self, key: str, origin: str) -> None:
        """Say that process ``origin`` has sockets on ``key``: from when this returns, every
        frame numbered by another process is also published to ``origin``'s listener."""
        ...

    async def unwatch(self, key: str, origin: str) -> None: ...

    async def stop_send(self, origin: str, generation_id: str) -> None:
        """Ask process ``origin`` to stop its generation ``generation_id``."""
        ...

    async def listen(
        self, origin: str, on_ready: Ready, on_frames: Receiver, on_stop: Stop
    ) -> None:
        """Receive what is published to ``origin`` (frames, stop requests) until cancelled or
        the connection fails. ``on_ready`` is awaited once the subscription is in place."""
        ...

    async def lost(self, keys: list[str]) -> dict[str, list[Frame]]:
        """Claim, among ``keys``, the generations whose process died: the latest generation
        has no end frame and its marker has expired. A claim holds for ``LOST_CLAIM_S``, so
        one process at a time resolves each. Returns each claimed key's frames (from the
        generation's start frame)."""
        ...

    async def end_lost(
        self, key: str, generation_id: str, frames: list[Frame], *, origin: str = ""
    ) -> list[Frame] | None:
        """Number and append the closing frames of a lost generation, if ``generation_id`` is
        still the latest generation, not in flight and not ended; else None (nothing
        written). Atomic, so a lost generation ends once whoever resolves it."""
        ...


class MemoryFrameStore:
    """One process's store, for the embedded set-up without Redis."""

    def __init__(self) -> None:
        self._seq: dict[str, int] = {}
        self._epoch: dict[str, str] = {}
        self._frames: dict[str, list[Frame]] = {}
        self._generation: dict[str, tuple[dict[str, Any], float]] = {}
        self._lost_claims: dict[str, tuple[str, float]] = {}

    def _number(
        self, key: str, frames: list[Frame], first: int | None = None, epoch: str | None = None
    ) -> list[Frame]:
        if first is None:
            first = self._seq.get(key, 0) + 1
        if key not in self._epoch:  # a process never loses its counter: one epoch per key
            self._epoch[key] = epoch or new_epoch()
        epoch = self._epoch[key]
        out = [{"seq": first + i, "epoch": epoch, **frame} for i, frame in enumerate(frames)]
        self._seq[key] = max(self._seq.get(key, 0), first + len(frames) - 1)
        return out

    async def begin(
        self, key: str, generation: dict[str, Any], frame: Frame, *, origin: str = ""
    ) -> Frame:
        if await self.generation(key) is not None:
            raise GenerationBusy(key)
        (numbered,) = self._number(key, [frame])
        self._frames[key] = [numbered]
        marker = {**generation, "start_seq": numbered["seq"]}
        self._generation[key] = (marker, time.monotonic() + GENERATION_TTL_S)
        return numbered

    async def append(
        self,
        key: str,
        frames: list[Frame],
        *,
        origin: str = "",
        first_seq: int | None = None,
        epoch: str | None = None,
    ) -> list[Frame]:
        numbered = self._number(key, frames, first_seq, epoch)
        self._frames.setdefault(key, []).extend(numbered)
        await self.touch(key)
        return numbered

    async def end(
        self,
        key: str,
        generation_id: str,
        frames: list[Frame],
        *,
        origin: str = "",
        first_seq: int | None = None,
        epoch: str | None = None,
    ) -> list[Frame]:
        numbered = self._number(key, frames, first_seq, epoch)
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
        frames = list(self._frames.get(key, []))
        return Snapshot(await self.generation(key), frames, self._epoch.get(key))

    async def frames_after(self, key: str, seq: int) -> list[Frame]:
        return [f for f in self._frames.get(key, []) if f["seq"] > seq]

    # One process: its bus delivers every frame and every stop itself, nothing is published.
    async def watch(self, key: str, origin: str) -> None:
        return None

    async def unwatch(self, key: str, origin: str) -> None:
        return None

    async def stop_send(self, origin: str, generation_id: str) -> None:
        return None

    async def listen(
        self, origin: str, on_ready: Ready, on_frames: Receiver, on_stop: Stop
    ) -> None:
        await on_ready()
        await asyncio.Event().wait()

    async def _open_lost(self, key: str) -> list[Frame] | None:
        frames = self._frames.get(key) or []
        if await self.generation(key) is not None or not frames:
            return None
        if frames[0]["type"] not in START_TYPES or "generation_id" not in frames[0]:
            return None
        if any(f["type"] in END_TYPES for f in frames):
            return None
        return frames

    async def lost(self, keys: list[str]) -> dict[str, list[Frame]]:
        claimed = {}
        for key in keys:
            frames = await self._open_lost(key)
            if frames is None:
                continue
            generation_id = frames[0]["generation_id"]
            held = self._lost_claims.get(key)
            if held is not None and held[0] == generation_id and held[1] > time.monotonic():
                continue
            self._lost_claims[key] = (generation_id, time.monotonic() + LOST_CLAIM_S)
            claimed[key] = list(frames)
        return claimed

    async def end_lost(
        self, key: str, generation_id: str, frames: list[Frame], *, origin: str = ""
    ) -> list[Frame] | None:
        open_frames = await self._open_lost(key)
        if open_frames is None or open_frames[0]["generation_id"] != generation_id:
            return None
        numbered = self._number(key, frames)
        open_frames.extend(numbered)
        return numbered


# Each operation is one atomic script (one round trip on the per-frame path). Frames arrive as
# JSON objects without "seq"; the script numbers them from the counter, or from the first seq
# given by the generation that numbered them (``first_seq``), and splices the number and the
# epoch in. ARGV[1] and ARGV[2] are always the calling process (its live channel's name) and the
# key: the script also publishes what it numbered to every other process that watches the key
# (studyapp/realtime/framebus.py), in the same round trip. A script returns "<last seq> <epoch>".
_HELPERS = """
local function fanout(out)
  local watchers = redis.call('SMEMBERS', KEYS[4])
  local payload = nil
  for _, origin in ipairs(watchers) do
    if origin ~= ARGV[1] then
      payload = payload or ('frames ' .. ARGV[2] .. '\\n[' .. table.concat(out, ',') .. ']')
      redis.call('PUBLISH', 'LIVE' .. origin, payload)
    end
  end
end

local function redis_run()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end

-- Begin epoch ``epoch`` at 0, vouched for by this run of Redis; the old epoch's frames go.
local function epoch_new(epoch)
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'n', 0, 'run', redis_run())
  redis.call('EXPIRE', KEYS[1], COUNTER_TTL)
  return epoch
end

-- The counter's epoch, or ``fresh`` begun anew when Redis lost the counter or kept it from
-- before its latest start (a snapshot or the append-only file may have rolled it back).
local function epoch_current(fresh)
  local held = redis.call('HMGET', KEYS[1], 'epoch', 'run')
  if held[1] and held[2] == redis_run() then return held[1] end
  return epoch_new(fresh)
end

-- ARGV[offset] is the first seq given by the generation that numbered the frames and
-- ARGV[offset + 1] the epoch it numbered them in, or '' and the id of an epoch to begin if
-- the counter numbers them and must begin one.
local function push(offset)
  local n = #ARGV - offset - 1
  local first, epoch = ARGV[offset], ARGV[offset + 1]
  if n == 0 then return 0, epoch, {} end
  local last
  if first == '' then
    epoch = epoch_current(epoch)
    last = redis.call('HINCRBY', KEYS[1], 'n', n)
  else  -- numbered by the generation that owns them: keep the counter at the highest
    last = tonumber(first) + n - 1
    local held = redis.call('HGET', KEYS[1], 'epoch')
    if not held then held = epoch_new(epoch) end  -- lost while this generation ran: it goes on
    if held == epoch and tonumber(redis.call('HGET', KEYS[1], 'n')) < last then
      redis.call('HSET', KEYS[1], 'n', last)
    end
  end
  local head = ', "epoch": "' .. epoch .. '", '
  local out = {}
  for i = 1, n do
    out[i] = '{"seq": ' .. (last - n + i) .. head .. string.sub(ARGV[offset + 1 + i], 2)
    redis.call('RPUSH', KEYS[2], out[i])
  end
  return last, epoch, out
end
"""

_BEGIN = """
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local epoch = epoch_current(ARGV[7])
local seq = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[2])
local numbered = '{"seq": ' .. seq .. ', "epoch": "' .. epoch .. '", ' .. string.sub(ARGV[3], 2)
redis.call('RPUSH', KEYS[2], numbered)
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('HSET', KEYS[3], 'start_seq', seq, unpack(ARGV, 8))
redis.call('EXPIRE', KEYS[3], ARGV[6])
fanout({numbered})
return seq .. ' ' .. epoch
"""

_APPEND = """
local last, epoch, out = push(4)
redis.call('EXPIRE', KEYS[3], ARGV[3])
fanout(out)
return last .. ' ' .. epoch
"""

# The marker is cleared only by the generation that owns it, so a late end can never clear a
# newer generation's marker.
_END = """
local last, epoch, out = push(5)
if #out > 0 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
if redis.call('HGET', KEYS[3], 'generation_id') == ARGV[3] then redis.call('DEL', KEYS[3]) end
fanout(out)
return last .. ' ' .. epoch
"""

# Lost generations (KEYS[5] is the participation's claim, holding the claimed generation's id).
# The buffer holds only the latest generation, its start frame first; its end is among the
# last frames, so the scan from the tail reads only a few unless the generation never ended.
_LOST_HELPERS = """
local starts = {turn_start = true, pair_start = true}
local ends = {turn_end = true, turn_error = true, turn_withdrawn = true, pair_end = true}

-- The latest generation's start frame, if it is neither in flight nor ended.
local function open_lost()
  if redis.call('EXISTS', KEYS[3]) == 1 then return nil end
  local n = redis.call('LLEN', KEYS[2])
  if n == 0 then return nil end
  local start = cjson.decode(redis.call('LINDEX', KEYS[2], 0))
  if not starts[start['type']] or not start['generation_id'] then return nil end
  local i = n - 1
  while i >= 1 do
    local lo = math.max(1, i - 15)
    local chunk = redis.call('LRANGE', KEYS[2], lo, i)
    for j = #chunk, 1, -1 do
      if ends[cjson.decode(chunk[j])['type']] then return nil end
    end
    i = lo - 1
  end
  return start
end
"""

# ARGV: origin, key, claim TTL.
_LOST = """
local start = open_lost()
if not start or redis.call('GET', KEYS[5]) == start['generation_id'] then return false end
redis.call('SET', KEYS[5], start['generation_id'], 'EX', ARGV[3])
return redis.call('LRANGE', KEYS[2], 0, -1)
"""

# ARGV: origin, key, generation id, frames TTL, '' and a fresh epoch (the store numbers them),
# frames...
_END_LOST = """
local start = open_lost()
if not start or start['generation_id'] ~= ARGV[3] then return -1 end
local last, epoch, out = push(5)
redis.call('EXPIRE', KEYS[2], ARGV[4])
fanout(out)
return last .. ' ' .. epoch
"""


class _Client(redis.Redis):
    """A redis-py client that also carries the relay's scripts on their own connection."""

    relay_scripts: ScriptPipe | RedisPyScripts


class RedisFrameStore:
    """The shared store: per participation a counter (a hash: the last ``n``, its ``epoch``
    and the Redis ``run`` that vouches for it), a list of frames, a marker hash and the set of
    processes that watch it live.

    Frames are stored as JSON strings; the marker is a hash (values JSON, but the generation id
    raw) whose TTL is the liveness of the generation that owns it. It needs one Redis (or a
    primary with replicas): not a Redis Cluster, where the scripts' PUBLISH to live channels
    would leave their keys' slot.
    """

    def __init__(self, url: str, prefix: str = "collabstudy:relay:") -> None:
        self._url = url
        self._prefix = prefix
        # redis.asyncio connections belong to the event loop that opened them.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # Blocking pool: under a burst a command waits for a free connection instead of
            # failing with "Too many connections". No CLIENT SETINFO (driver_info=None): it
            # costs each new connection a round trip and a package-metadata lookup.
            pool = redis.BlockingConnectionPool.from_url(
                self._url,
                decode_responses=True,
                max_connections=REDIS_POOL_SIZE,
                timeout=10,
                driver_info=None,
            )
            client = _Client(connection_pool=pool)
            # The scripts, some 4,000 calls a second at 200 streams, on a lean connection of
            # their own (studyapp/realtime/scriptpipe.py), or on redis-py's by setting.
            kind = RedisPyScripts if settings.RELAY_SCRIPT_CLIENT == "redis-py" else ScriptPipe
            client.relay_scripts = kind(
                self._url,
                {
                    name: self._helpers() + body
                    for name, body in (("begin", _BEGIN), ("append", _APPEND), ("end", _END))
                },
                timeout_s=settings.REDIS_CALL_TIMEOUT_S,
            )
            self._clients[loop] = client
        return client

    def _helpers(self) -> str:
        """The scripts' shared functions, with this store's live channel prefix and TTLs."""
        live = self._live_channel("")
        return _HELPERS.replace("LIVE", live).replace("COUNTER_TTL", str(SEQ_TTL_S))

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}{{{key}}}"
        return [f"{base}:counter", f"{base}:frames", f"{base}:gen", f"{base}:watchers"]

    def _live_channel(self, origin: str) -> str:
        return f"{self._prefix}live:{origin}"

    async def _run(self, script: str, key: str, origin: str, args: list[Any]) -> tuple[int, str]:
        """Run a script; its last seq and epoch (-1 and "" when ``begin`` found one in flight)."""
        scripts = self._client().relay_scripts
        reply = await scripts.call(script, self._keys(key), [origin, key, *args])
        if isinstance(reply, int):
            return reply, ""
        last, _, epoch = str(reply, "ascii").partition(" ")
        return int(last), epoch

    @staticmethod
    def _numbered(frames: list[Frame], last: int, epoch: str) -> list[Frame]:
        first = last - len(frames) + 1
        return [{"seq": first + i, "epoch": epoch, **frame} for i, frame in enumerate(frames)]

    @staticmethod
    def _numbering(first_seq: int | None, epoch: str | None) -> list[Any]:
        """The scripts' two arguments that say who numbers the frames (see ``push``)."""
        if first_seq is None:
            return ["", new_epoch()]
        if epoch is None:
            raise ValueError("frames numbered by their generation need the epoch it numbers in")
        return [first_seq, epoch]

    async def begin(
        self, key: str, generation: dict[str, Any], frame: Frame, *, origin: str = ""
    ) -> Frame:
        fields: list[Any] = ["generation_id", generation["generation_id"]]
        for name, value in generation.items():
            if name != "generation_id":
                fields += [name, json.dumps(value)]
        ttls = [SEQ_TTL_S, FRAMES_TTL_S, GENERATION_TTL_S]
        args = [json.dumps(frame), *ttls, new_epoch(), *fields]
        seq, epoch = await self._run("begin", key, origin, args)
        if seq < 0:
            raise GenerationBusy(key)
        return {"seq": seq, "epoch": epoch, **frame}

    async def append(
        self,
        key: str,
        frames: list[Frame],
        *,
        origin: str = "",
        first_seq: int | None = None,
        epoch: str | None = None,
    ) -> list[Frame]:
        numbering = self._numbering(first_seq, epoch)
        args = [GENERATION_TTL_S, *numbering, *map(json.dumps, frames)]
        return self._numbered(frames, *await self._run("append", key, origin, args))

    async def end(
        self,
        key: str,
        generation_id: str,
        frames: list[Frame],
        *,
        origin: str = "",
        first_seq: int | None = None,
        epoch: str | None = None,
    ) -> list[Frame]:
        numbering = self._numbering(first_seq, epoch)
        args = [generation_id, FRAMES_TTL_S, *numbering, *map(json.dumps, frames)]
        return self._numbered(frames, *await self._run("end", key, origin, args))

    async def touch(self, key: str) -> None:
        await self._client().expire(self._keys(key)[2], GENERATION_TTL_S)

    @staticmethod
    def _marker(raw: dict[str, str]) -> dict[str, Any] | None:
        if not raw:
            return None
        marker = {k: json.loads(v) for k, v in raw.items() if k != "generation_id"}
        marker["generation_id"] = raw["generation_id"]
        return marker

    async def generation(self, key: str) -> dict[str, Any] | None:
        return self._marker(await self._client().hgetall(self._keys(key)[2]))

    async def snapshot(self, key: str) -> Snapshot:
        counter_key, frames_key, gen_key, _ = self._keys(key)
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.hgetall(gen_key)
            pipe.lrange(frames_key, 0, -1)
            pipe.hget(counter_key, "epoch")
            raw_gen, raw_frames, epoch = await pipe.execute()
        # A late frame of an epoch that was replaced (its generation ran on) is not replayed.
        frames = [f for f in map(json.loads, raw_frames) if f.get("epoch") == epoch]
        return Snapshot(self._marker(raw_gen), frames, epoch)

    async def frames_after(self, key: str, seq: int) -> list[Frame]:
        frames = [json.loads(f) for f in await self._client().lrange(self._keys(key)[1], 0, -1)]
        return [f for f in frames if f["seq"] > seq]

    async def watch(self, key: str, origin: str) -> None:
        watchers = self._keys(key)[3]
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.sadd(watchers, origin)
            pipe.expire(watchers, SEQ_TTL_S)
            await pipe.execute()

    async def unwatch(self, key: str, origin: str) -> None:
        await self._client().srem(self._keys(key)[3], origin)

    async def stop_send(self, origin: str, generation_id: str) -> None:
        await self._client().publish(self._live_channel(origin), f"stop {generation_id}")

    def _lost_script(self, name: str) -> Any:
        # Rare calls: plain scripts on the shared pool, beside the hot ones (relay_scripts).
        client = self._client()
        scripts = getattr(client, "lost_scripts", None)
        if scripts is None:
            head = self._helpers() + _LOST_HELPERS
            scripts = client.lost_scripts = {
                "lost": client.register_script(head + _LOST),
                "end_lost": client.register_script(head + _END_LOST),
            }
        return scripts[name]

    def _lost_keys(self, key: str) -> list[str]:
        return [*self._keys(key), f"{self._prefix}{{{key}}}:lost"]

    async def lost(self, keys: list[str]) -> dict[str, list[Frame]]:
        script = self._lost_script("lost")
        async with self._client().pipeline(transaction=False) as pipe:
            for key in keys:
                await script(self._lost_keys(key), ["", key, LOST_CLAIM_S], client=pipe)
            found = await pipe.execute()
        return {
            key: [json.loads(f) for f in frames]
            for key, frames in zip(keys, found, strict=True)
            if frames
        }

    async def end_lost(
        self, key: str, generation_id: str, frames: list[Frame], *, origin: str = ""
    ) -> list[Frame] | None:
        numbering = self._numbering(None, None)
        args = [origin, key, generation_id, FRAMES_TTL_S, *numbering, *map(json.dumps, frames)]
        reply = await self._lost_script("end_lost")(self._lost_keys(key), args)
        if isinstance(reply, int):
            return None
        last, _, epoch = str(reply).partition(" ")
        return self._numbered(frames, int(last), epoch)

    async def listen(
        self, origin: str, on_ready: Ready, on_frames: Receiver, on_stop: Stop
    ) -> None:
        pubsub = self._client().pubsub()
        try:
            await pubsub.subscribe(self._live_channel(origin))
            async for message in pubsub.listen():
                if message["type"] == "subscribe":
                    await on_ready()
                    continue
                kind, _, rest = message["data"].partition(" ")
                if kind == "frames":
                    key, _, body = rest.partition("\n")
                    on_frames(key, json.loads(body))
                elif kind == "stop":
                    on_stop(rest)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def new_epoch() -> str:
    """A fresh epoch id: random, so that no two of a participation's epochs are alike."""
    return secrets.token_hex(4)


_store: FrameStore | None = None


def frame_store() -> FrameStore:
    """The process's store: Redis when ``settings.REDIS_URL`` is set, else in memory."""
    global _store
    if _store is None:
        url = settings.REDIS_URL
        _store = RedisFrameStore(url) if url else MemoryFrameStore()
    return _store
