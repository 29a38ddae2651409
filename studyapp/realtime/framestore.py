"""The replay buffer behind the relay: numbered frames and the generation in flight.

Every frame a generation publishes (turn_start, delta, turn_end, ...) gets a sequence number
that is per participation and monotonic across turns, and is appended here before it is
delivered live (studyapp/realtime/framebus.py). A client that reconnects (maybe to another ASGI
process) replays what it missed from here, so the store must be shared between processes:
Redis when ``REDIS_URL`` is set, a dict in this process otherwise (the embedded ``make run``).
The Redis store also carries frames live between processes: the script that numbers a batch
publishes it to every other process that watches the participation.

Every frame is numbered here, by one counter per participation, whoever writes it: the
generation in flight (through its lease, studyapp/realtime/framebus.py) and anyone else who
publishes a frame (a rating given in another tab, a saved document). Only the generation that
holds the participation's lease may append to it or end it: a generation whose marker was
claimed as lost, or that a newer one replaced, is refused (:class:`LeaseLost`).

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


class LeaseLost(Exception):
    """The generation no longer holds its participation's lease: its marker was claimed as
    lost (studyapp/writing/lost.py) or a newer generation began; it may not write."""


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

    async def append(self, key: str, frames: list[Frame], *, origin: str = "") -> list[Frame]:
        """Number and append frames that belong to no generation (a rating given, a saved
        document). ``origin``, the calling process, is the one watcher the frames are not
        published to (it delivers them itself)."""
        ...

    async def lease_append(
        self,
        key: str,
        generation_id: str,
        frames: list[Frame],
        *,
        origin: str = "",
        epoch: str | None = None,
        last_seq: int = 0,
    ) -> list[Frame]:
        """Number and append the frames of generation ``generation_id`` and keep its marker
        alive; :class:`LeaseLost` (nothing written) if it no longer holds the lease. ``epoch``
        and ``last_seq``, the generation's latest frame, let it go on in its epoch if Redis
        lost the counter while it ran."""
        ...

    async def lease_end(
        self,
        key: str,
        generation_id: str,
        frames: list[Frame],
        *,
        origin: str = "",
        epoch: str | None = None,
        last_seq: int = 0,
    ) -> list[Frame]:
        """As :meth:`lease_append` for the generation's closing frames; clears its marker."""
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

    def _number(self, key: str, frames: list[Frame]) -> list[Frame]:
        first = self._seq.get(key, 0) + 1
        # A process never loses its counter: one epoch per key.
        epoch = self._epoch.setdefault(key, new_epoch())
        out = [{"seq": first + i, "epoch": epoch, **frame} for i, frame in enumerate(frames)]
        self._seq[key] = first + len(frames) - 1
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

    async def append(self, key: str, frames: list[Frame], *, origin: str = "") -> list[Frame]:
        numbered = self._number(key, frames)
        self._frames.setdefault(key, []).extend(numbered)
        return numbered

    async def _lease_check(self, key: str, generation_id: str) -> None:
        """Raise :class:`LeaseLost` unless ``generation_id`` holds ``key``'s lease (the rule
        of the Redis store's ``lease_held``)."""
        current = await self.generation(key)
        if current is not None:
            held = current["generation_id"] == generation_id
        else:
            claim = self._lost_claims.get(key)
            claimed = claim is not None and claim[0] == generation_id
            first = (self._frames.get(key) or [{}])[0]
            held = not claimed and first.get("generation_id") in (None, generation_id)
        if not held:
            raise LeaseLost(generation_id)

    async def lease_append(
        self,
        key: str,
        generation_id: str,
        frames: list[Frame],
        *,
        origin: str = "",
        epoch: str | None = None,
        last_seq: int = 0,
    ) -> list[Frame]:
        await self._lease_check(key, generation_id)
        numbered = await self.append(key, frames)
        await self.touch(key)
        return numbered

    async def lease_end(
        self,
        key: str,
        generation_id: str,
        frames: list[Frame],
        *,
        origin: str = "",
        epoch: str | None = None,
        last_seq: int = 0,
    ) -> list[Frame]:
        await self._lease_check(key, generation_id)
        numbered = await self.append(key, frames)
        self._generation.pop(key, None)
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
# JSON objects without "seq"; the script numbers them from the participation's counter, the one
# place that numbers its frames, and splices the number and the epoch in. ARGV[1] and ARGV[2]
# are always the calling process (its live channel's name) and the key: the script also
# publishes what it numbered to every other process that watches the key
# (studyapp/realtime/framebus.py), in the same round trip. KEYS[5] is the participation's lost
# claim (see _LOST). A script returns "<last seq> <epoch>", or -1 when refused.
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

-- The epoch a generation's frames are numbered in, given the epoch and seq of its latest
-- frame: the counter's, kept at least at that seq; and if Redis lost the counter while the
-- generation ran, the generation's own epoch again, from past its latest frame (it goes on).
local function epoch_kept(epoch, last)
  local held = redis.call('HMGET', KEYS[1], 'epoch', 'n')
  if held[1] == epoch then
    if tonumber(held[2]) < last then redis.call('HSET', KEYS[1], 'n', last) end
    return epoch
  end
  if held[1] and redis.call('HGET', KEYS[1], 'run') == redis_run() then return held[1] end
  epoch_new(epoch)
  redis.call('HSET', KEYS[1], 'n', last)
  return epoch
end

-- Whether generation ``id`` holds the participation's lease: its marker is in flight, or it
-- expired (or Redis lost it) and neither did a newer generation begin nor a process claim
-- this one as lost.
local function lease_held(id)
  local owner = redis.call('HGET', KEYS[3], 'generation_id')
  if owner then return owner == id end
  if redis.call('GET', KEYS[5]) == id then return false end
  local first = redis.call('LINDEX', KEYS[2], 0)
  if not first then return true end
  local began = cjson.decode(first)['generation_id']
  return began == nil or began == id
end

-- Number and append the frames ARGV[offset + 2 ...]. ARGV[offset] and ARGV[offset + 1] are
-- the seq and epoch of the writing generation's latest frame, or '' and the id of an epoch to
-- begin if the counter must begin one.
local function push(offset)
  local n = #ARGV - offset - 1
  local last, epoch = ARGV[offset], ARGV[offset + 1]
  if n == 0 then return 0, epoch, {} end
  if last == '' then epoch = epoch_current(epoch) else epoch = epoch_kept(epoch, tonumber(last)) end
  last = redis.call('HINCRBY', KEYS[1], 'n', n)
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

# ARGV: origin, key, '', a fresh epoch, frames...
_APPEND = """
local last, epoch, out = push(3)
fanout(out)
return last .. ' ' .. epoch
"""

# ARGV: origin, key, generation id, marker TTL, the generation's latest seq and epoch, frames...
_LEASE_APPEND = """
if not lease_held(ARGV[3]) then return -1 end
local last, epoch, out = push(5)
redis.call('EXPIRE', KEYS[3], ARGV[4])
fanout(out)
return last .. ' ' .. epoch
"""

# ARGV: origin, key, generation id, frames TTL, the generation's latest seq and epoch, frames...
# The marker is cleared only by the generation that holds it.
_LEASE_END = """
if not lease_held(ARGV[3]) then return -1 end
local last, epoch, out = push(5)
if #out > 0 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
redis.call('DEL', KEYS[3])
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

# ARGV: origin, key, generation id, frames TTL, '' and a fresh epoch, frames...
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
                    for name, body in (
                        ("begin", _BEGIN),
                        ("append", _APPEND),
                        ("lease_append", _LEASE_APPEND),
                        ("lease_end", _LEASE_END),
                    )
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
        # The lost claim last: KEYS[5] of the scripts (see _LOST).
        return [
            f"{base}:counter",
            f"{base}:frames",
            f"{base}:gen",
            f"{base}:watchers",
            f"{base}:lost",
        ]

    def _live_channel(self, origin: str) -> str:
        return f"{self._prefix}live:{origin}"

    async def _run(self, script: str, key: str, origin: str, args: list[Any]) -> tuple[int, str]:
        """Run a script; its last seq and epoch (-1 and "" when it refused: ``begin`` found
        a generation in flight, a lease script one that no longer holds the lease)."""
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
    def _latest(epoch: str | None, last_seq: int) -> list[Any]:
        """The scripts' two arguments that say where numbering stands (see ``push``): the
        writing generation's latest frame, or nothing (the counter's epoch, or a fresh one)."""
        return ["", new_epoch()] if epoch is None else [last_seq, epoch]

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

    async def append(self, key: str, frames: list[Frame], *, origin: str = "") -> list[Frame]:
        args = [*self._latest(None, 0), *map(json.dumps, frames)]
        return self._numbered(frames, *await self._run("append", key, origin, args))

    async def lease_append(
        self,
        key: str,
        generation_id: str,
        frames: list[Frame],
        *,
        origin: str = "",
        epoch: str | None = None,
        last_seq: int = 0,
    ) -> list[Frame]:
        args = [generation_id, GENERATION_TTL_S, *self._latest(epoch, last_seq)]
        return await self._lease_run("lease_append", key, origin, args, frames)

    async def lease_end(
        self,
        key: str,
        generation_id: str,
        frames: list[Frame],
        *,
        origin: str = "",
        epoch: str | None = None,
        last_seq: int = 0,
    ) -> list[Frame]:
        args = [generation_id, FRAMES_TTL_S, *self._latest(epoch, last_seq)]
        return await self._lease_run("lease_end", key, origin, args, frames)

    async def _lease_run(
        self, script: str, key: str, origin: str, args: list[Any], frames: list[Frame]
    ) -> list[Frame]:
        last, epoch = await self._run(script, key, origin, [*args, *map(json.dumps, frames)])
        if last < 0:
            raise LeaseLost(args[0])
        return self._numbered(frames, last, epoch)

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
        counter_key, frames_key, gen_key, *_ = self._keys(key)
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

    async def lost(self, keys: list[str]) -> dict[str, list[Frame]]:
        script = self._lost_script("lost")
        async with self._client().pipeline(transaction=False) as pipe:
            for key in keys:
                await script(self._keys(key), ["", key, LOST_CLAIM_S], client=pipe)
            found = await pipe.execute()
        return {
            key: [json.loads(f) for f in frames]
            for key, frames in zip(keys, found, strict=True)
            if frames
        }

    async def end_lost(
        self, key: str, generation_id: str, frames: list[Frame], *, origin: str = ""
    ) -> list[Frame] | None:
        latest = self._latest(None, 0)
        args = [origin, key, generation_id, FRAMES_TTL_S, *latest, *map(json.dumps, frames)]
        reply = await self._lost_script("end_lost")(self._keys(key), args)
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
