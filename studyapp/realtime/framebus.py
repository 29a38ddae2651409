"""Live delivery of numbered frames to the sockets that watch a participation.

The frame store numbers and keeps every frame (the replay buffer); this bus carries them to
the sockets as they are made. A socket in the process that makes a frame gets it straight
from there, with no round trip. A socket in another process gets it through Redis: the store's
script that numbers a batch also publishes it, in the same round trip, to each other process
that watches the participation, on that process's one channel. A process therefore reads one
subscription however many sockets it serves, and a frame costs one Redis call however many
sockets watch it. The same channel carries "stop" to the process that runs a generation.

The store numbers every frame, in one counter per participation: a frame reaches a socket
only once the store holds it, so a socket may read the store at any time. A generation writes
through the :class:`Lease` that :func:`begin` returns (the store marks it in flight in the same
script, so two can never both begin); the lease is the only writer of its generation's frames,
and a lease that lost the participation (claimed as lost, or a newer generation began) is
refused (``LeaseLost``). Frames of no generation (a rating given, a saved document) are
published with :func:`publish`.

Delivery may repeat or skip a frame (a subscription broken and restored, batches of two
concurrent writers resolving out of order): a socket sends each ``seq`` once, in order, and
takes a gap from the store. When the process's subscription was broken, every sink is told
to resync from the store (it is given ``None``): Redis may have restarted meanwhile, so what
the store holds may be of a new epoch, numbered from 1 again.

One bus per event loop, like the store's Redis clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import weakref
from collections.abc import Callable
from typing import Any

from studyapp.realtime.framestore import Frame, LeaseLost, frame_store
from studyapp.realtime.outage import Outage, redis_unavailable

log = logging.getLogger(__name__)

# Called with each batch of frames for its key, or with None: "you may have missed some".
Sink = Callable[[list[Frame] | None], None]

RETRY_S = 0.5
READY_TIMEOUT_S = 10.0


class _Bus:
    def __init__(self) -> None:
        self.origin = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.sinks: dict[str, set[Sink]] = {}
        # Membership changes are made one at a time, each one awaited in Redis before the next,
        # so a watch and an unwatch of the same key cannot overtake each other there.
        self.membership = asyncio.Lock()
        self.ready = asyncio.Event()
        self.listener: asyncio.Task[None] | None = None
        self.outage = Outage(log, f"frame bus subscription {self.origin}")

    def deliver(self, key: str, frames: list[Frame] | None) -> None:
        for sink in tuple(self.sinks.get(key, ())):
            try:
                sink(frames)
            except Exception:  # one broken socket must not starve the others
                log.exception("frame sink for %s failed", key)

    async def subscribed(self) -> None:
        if self.ready.is_set() and self.listener is not None and not self.listener.done():
            return  # no wait_for: its task costs two turns of a busy event loop
        if self.listener is None or self.listener.done():
            self.ready.clear()
            self.listener = asyncio.get_running_loop().create_task(
                self._listen(), name="framebus-listener"
            )
        await asyncio.wait_for(self.ready.wait(), READY_TIMEOUT_S)

    async def _listen(self) -> None:
        restored = False
        while True:
            try:
                on_ready = functools.partial(self._on_ready, restored)
                await frame_store().listen(self.origin, on_ready, self.deliver, _stop_local)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if redis_unavailable(exc):  # Redis restarting: one line per outage
                    self.outage.failed(exc)
                else:
                    log.exception("frame bus subscription %s failed; reconnecting", self.origin)
            self.ready.clear()
            restored = True
            await asyncio.sleep(RETRY_S)

    async def _on_ready(self, restored: bool) -> None:
        if restored:
            # Redis may have lost the watcher sets with the connection: say them again, then
            # let every socket take from the store what was published meanwhile.
            async with self.membership:
                for key in list(self.sinks):
                    await frame_store().watch(key, self.origin)
            for key in list(self.sinks):
                self.deliver(key, None)
        self.outage.ok()
        self.ready.set()


# This process's generations by id, each with the event that stops it.
_stop_events: dict[str, asyncio.Event] = {}


def _stop_local(generation_id: str) -> bool:
    event = _stop_events.get(generation_id)
    if event is not None:
        event.set()
    return event is not None


_buses: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Bus] = weakref.WeakKeyDictionary()


def _bus() -> _Bus:
    loop = asyncio.get_running_loop()
    bus = _buses.get(loop)
    if bus is None:
        bus = _buses[loop] = _Bus()
    return bus


async def watch(key: str, sink: Sink) -> None:
    """Give ``sink`` every frame of ``key`` numbered from when this returns (and maybe some
    before: read the store after this, not before)."""
    bus = _bus()
    await bus.subscribed()
    async with bus.membership:
        sinks = bus.sinks.setdefault(key, set())
        if not sinks:
            try:
                await frame_store().watch(key, bus.origin)
            except BaseException:
                del bus.sinks[key]
                raise
        sinks.add(sink)


async def unwatch(key: str, sink: Sink) -> None:
    bus = _bus()
    async with bus.membership:
        sinks = bus.sinks.get(key)
        if sinks is None or sink not in sinks:
            return
        sinks.discard(sink)
        if not sinks:
            del bus.sinks[key]
            await frame_store().unwatch(key, bus.origin)


class Lease:
    """The right to write one generation's frames: the only writer of them, from its begin to
    its end. Its frames are numbered by the store like any other, then delivered."""

    def __init__(self, key: str, generation_id: str, start: Frame) -> None:
        self.key = key
        self.generation_id = generation_id
        self.start = start  # the generation's first frame, numbered
        # Where its numbering stands: lets it go on in its epoch if Redis loses the counter.
        self.epoch: str = start["epoch"]
        self.last_seq: int = start["seq"]
        self.ended = False

    async def append(self, frames: list[Frame]) -> list[Frame]:
        """Number and store ``frames`` and deliver them to every socket on the key."""
        return await self._write(frames, closing=False)

    async def end(self, frames: list[Frame]) -> list[Frame]:
        """Store the closing frames, clear the generation's marker and deliver them; the
        lease writes nothing more."""
        return await self._write(frames, closing=True)

    async def touch(self) -> None:
        """Keep the generation's marker alive while it has nothing to write."""
        await frame_store().touch(self.key)

    async def _write(self, frames: list[Frame], *, closing: bool) -> list[Frame]:
        if self.ended:
            raise LeaseLost(self.generation_id)
        bus = _bus()
        store = frame_store()
        write = store.lease_end if closing else store.lease_append
        if closing:
            self.ended = True
        numbered = await write(
            self.key,
            self.generation_id,
            frames,
            origin=bus.origin,
            epoch=self.epoch,
            last_seq=self.last_seq,
        )
        if numbered:
            latest = numbered[-1]
            if latest["epoch"] != self.epoch or latest["seq"] > self.last_seq:
                self.epoch, self.last_seq = latest["epoch"], latest["seq"]
        bus.deliver(self.key, numbered)
        return numbered


async def begin(key: str, marker: dict[str, Any], frame: Frame) -> Lease:
    """Start a generation in the store (see ``FrameStore.begin``), deliver its frame and
    return the lease its further frames are written through."""
    bus = _bus()
    numbered = await frame_store().begin(key, marker, frame, origin=bus.origin)
    bus.deliver(key, [numbered])
    return Lease(key, marker["generation_id"], numbered)


async def publish(key: str, frames: list[Frame]) -> list[Frame]:
    """Number and store frames of no generation (a rating given in another tab, a saved
    document) and deliver them to every socket on ``key``."""
    bus = _bus()
    numbered = await frame_store().append(key, frames, origin=bus.origin)
    bus.deliver(key, numbered)
    return numbered


async def stoppable(generation_id: str) -> tuple[str, asyncio.Event]:
    """Make ``generation_id`` stoppable from any process: the event a stop sets, and the
    name (this process's ``origin``) to put in its marker for :func:`stop`."""
    bus = _bus()
    await bus.subscribed()
    event = _stop_events[generation_id] = asyncio.Event()
    return bus.origin, event


def unstoppable(generation_id: str) -> None:
    _stop_events.pop(generation_id, None)


async def stop(origin: str, generation_id: str) -> None:
    """Stop ``generation_id``, which runs in process ``origin``."""
    if not _stop_local(generation_id):
        await frame_store().stop_send(origin, generation_id)


async def close() -> None:
    """End this event loop's subscription (before the loop closes: tests, shutdown hooks)."""
    bus = _buses.pop(asyncio.get_running_loop(), None)
    if bus is not None and bus.listener is not None:
        bus.listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bus.listener


def watched() -> list[str]:
    """The participations this process's sockets watch."""
    return list(_bus().sinks)


async def end_lost(key: str, generation_id: str, frames: list[Frame]) -> list[Frame] | None:
    """End a generation whose process died (see ``FrameStore.end_lost``) and deliver its end;
    None when it had ended already or a newer one began."""
    bus = _bus()
    numbered = await frame_store().end_lost(key, generation_id, frames, origin=bus.origin)
    if numbered:
        bus.deliver(key, numbered)
    return numbered
