"""A generation: model deltas to numbered frames, decoupled from any socket.

A generation runs as its own asyncio task in the ASGI process that began it. It coalesces the
model's deltas into frames (the first at once, then at most one every ``RELAY_FLUSH_MS``) and
writes them through its lease (:class:`.framebus.Lease`, the one writer of its frames), which
has them numbered and kept in the shared :mod:`.framestore` and delivers them to every socket
on the participation, in this process or another. Sockets only listen: a dropped connection
neither stops nor loses a reply, and a client that reconnects (to any process) is given what
it missed by :func:`resume_plan`. "Stop" reaches the generation through the bus too, from any
process: the generation's marker names the process that runs it. A stopping server lets its
generations finish for a while, then stops the rest (:func:`generations_drain`), which end as
failed with :class:`ServerStopping`.

What a generation is for (a turn, a side-by-side pair), and what its end stores, is the caller's:
it passes the coroutine that runs the generation to :func:`generation_launch`
(studyapp/writing/relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import uuid
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from collab_models.arms import cached_arm
from studyapp.realtime import framebus, timeline
from studyapp.realtime.dbretry import keepalive_s
from studyapp.realtime.framebus import Lease
from studyapp.realtime.framestore import Frame, LeaseLost, Snapshot, frame_store
from studyapp.realtime.outage import Outage, redis_unavailable

log = logging.getLogger(__name__)
# The replies of this process that met Redis away: one warning per outage, not one each.
_redis_outage = Outage(log, "replies")

KEEPALIVE_S = keepalive_s()
# Once stopped by a server's shutdown, a generation still has this long to store and end.
SHUTDOWN_END_S = 10.0
END_TYPES = frozenset({"turn_end", "turn_error"})

# Sampling seeds and generation ids need no secrecy, and the system call behind SystemRandom
# and uuid4, made on the event loop, hands the GIL to the database threads for a switch
# interval (up to 5 ms) when they are busy: under a burst of sends that added up.
_seeds = random.Random()  # noqa: S311
# A worker forked from a process that imported this must not repeat its parent's sequence.
os.register_at_fork(after_in_child=_seeds.seed)
# Strong references: the event loop only keeps weak ones to running tasks.
_running: set[asyncio.Task[None]] = set()
# This process's generations, each with the event that stops it.
_generations: dict[asyncio.Task[None], asyncio.Event] = {}
# Stop events set by the server's shutdown: their generations end as failed, not as stopped.
_interrupted: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()


class ServerStopping(Exception):
    """The server stopped the generation on its way down; the turn may be retried."""

    permanent = False


def flush_interval_s() -> float:
    return settings.RELAY_FLUSH_MS / 1000


def generation_timeout_s() -> float:
    return float(getattr(settings, "GENERATION_TIMEOUT_S", 600))


Runner = Callable[[Lease, asyncio.Event], Coroutine[Any, Any, None]]


async def generation_launch(
    key: str, marker: dict[str, Any], start: Frame, run: Runner
) -> tuple[str, asyncio.Task[None]]:
    """Mark a generation of ``key`` in flight (``marker`` says which turn it answers), publish
    its ``start`` frame (given its ``generation_id``) and run ``run(lease, stop_event)`` as its
    own task: the lease (``lease.generation_id``) writes its frames and its end."""
    generation_id = str(uuid.UUID(int=_seeds.getrandbits(128), version=4))
    marker = {"generation_id": generation_id, **marker}
    start = {**start, "generation_id": generation_id}
    try:
        marker["origin"], stop_event = await framebus.stoppable(generation_id)
        lease = await framebus.begin(key, marker, start)
        timeline.mark("turn_started", key)
    except BaseException:
        framebus.unstoppable(generation_id)
        raise
    task = _spawn(run(lease, stop_event), f"generation-{generation_id}")
    _generations[task] = stop_event
    task.add_done_callback(lambda _: framebus.unstoppable(generation_id))
    task.add_done_callback(_generations.pop)
    return generation_id, task


def in_flight() -> int:
    """How many generations this process is running."""
    return len(_generations)


async def generation_marker(public_id: str) -> dict[str, Any] | None:
    """The marker of the generation in flight, if any (cleared by the store before a socket
    gets the generation's end)."""
    return await frame_store().generation(public_id)


async def generation_stop(public_id: str) -> bool:
    """Ask the generation in flight (in whichever process) to stop; False when none is."""
    marker = await generation_marker(public_id)
    if marker is None:
        return False
    await framebus.stop(marker["origin"], marker["generation_id"])
    return True


async def generations_wait(limit_s: float | None = None) -> bool:
    """Wait for this process's generations to end (tests, graceful shutdown); True if all did."""
    pending = set(_running)
    if not pending:
        return True
    _, still = await asyncio.wait(pending, timeout=limit_s)
    return not still


async def generations_drain(limit_s: float) -> None:
    """Server shutdown: let this process's generations end for up to ``limit_s``, then stop
    the rest; each ends as failed (:class:`ServerStopping`), for its runner to store as a turn
    the participant may retry, and to publish."""
    if await generations_wait(limit_s):
        return
    stopping = dict(_generations)
    log.warning("shutdown: stopping %d replies still streaming", len(stopping))
    for event in stopping.values():
        _interrupted.add(event)
        event.set()
    if await generations_wait(SHUTDOWN_END_S):
        return
    for task in set(_running):  # a database that does not answer: give up on the rest
        log.error("shutdown: %s did not end", task.get_name())
        task.cancel()
    await asyncio.wait(set(_running), timeout=1.0)


def _build_arm(config: dict[str, Any]) -> Any:
    return cached_arm(
        config, base_dir=settings.BASE_DIR, offline_rate=settings.OFFLINE_TOKENS_PER_SECOND
    )


class ModelCall:
    """One request to the model, read into a buffer from the moment it is opened.

    Discarding it closes the connection, which makes the model server abort.
    """

    def __init__(
        self,
        config: dict[str, Any],
        history: list[dict[str, str]],
        seed: int | None = None,
        *,
        key: str = "",
    ) -> None:
        self.config = config
        self.key = key  # the participation, for the timeline
        self.history = history
        self.seed = _seeds.randrange(2**31) if seed is None else seed
        self.pending: list[str] = []
        # Resolved by the next delta (see ``arrival``): the generation waits on this one
        # future, so a delta wakes it in one turn of the event loop.
        self.waiter: asyncio.Future[None] | None = None
        self.stream = _build_arm(config).reply(history, seed=self.seed)
        # The request goes to the model server now, in the caller's turn of the event loop:
        # under a burst of messages every later turn waits behind all the others' handling.
        self.stream.start()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        # Each delta straight from the model's socket, in its turn of the event loop: no
        # wake-up of this task per token.
        await self.stream.deliver_to(self._arrived)

    def _arrived(self, delta: str) -> None:
        if not self.pending:
            timeline.mark("model_delta_arrived", self.key)
        self.pending.append(delta)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def arrival(self) -> asyncio.Future[None]:
        """A future that the next delta resolves (the caller may resolve it too)."""
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter

    def fits(self, config: dict[str, Any], history: list[dict[str, str]]) -> bool:
        return config == self.config and history == self.history

    async def close(self, grace_s: float = 5.0) -> None:
        """Close the stream, give the reader ``grace_s`` to finish, then cancel it."""
        await self.stream.aclose()
        if not self.reader.done():
            await asyncio.wait({self.reader}, timeout=grace_s)
            self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader


def call_open(
    config: dict[str, Any], history: list[dict[str, str]], seed: int | None = None, key: str = ""
) -> ModelCall | None:
    """Open a model call ahead of its turn; None when the arm cannot even be built."""
    try:
        return ModelCall(config, history, seed, key=key)
    except Exception:  # the generation will build it again and report the error properly
        log.exception("could not open a model call ahead of its turn")
        return None


def call_discard(call: ModelCall) -> None:
    """Close an unused call in the background (the caller does not wait for the model)."""
    _spawn(call.close(grace_s=1.0), "model-call-discard")


async def _first_of(
    waiter: asyncio.Future[None], also: tuple[asyncio.Future[Any], ...], limit_s: float
) -> None:
    """Wait until ``waiter`` or one of ``also`` is done, or ``limit_s`` has passed.

    Unlike ``asyncio.wait`` (a callback, then the caller's wake-up), the common case, a delta
    resolving ``waiter``, wakes the caller in the next turn of the loop: under a burst every
    turn is long, and a reply's frames cross one per delta.
    """

    def wake(_: Any = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    for future in also:
        future.add_done_callback(wake)
    timer = asyncio.get_running_loop().call_later(limit_s, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        for future in also:
            future.remove_done_callback(wake)


def _spawn(coroutine: Any, name: str) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coroutine, name=name)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


class Generation:
    """One reply being streamed: reads the model, flushes frames, honours stop and timeout."""

    def __init__(
        self,
        lease: Lease,
        config: dict[str, Any],
        history: list[dict[str, str]],
        stop_event: asyncio.Event,
        call: ModelCall | None = None,
        generation_id: str | None = None,
    ) -> None:
        self.lease = lease
        self.key = lease.key
        self.config = config
        self.history = history
        # Its own id: a side-by-side candidate's, under the pair's lease.
        self.generation_id = generation_id or lease.generation_id
        self.stop_event = stop_event
        self.call = call
        self.delta_fields: dict[str, Any] = {}  # e.g. which side-by-side candidate this is
        self.shown: list[str] = []  # every delta published, i.e. what the participant saw
        self.error: BaseException | None = None
        self.cancelled = False

    @property
    def seed(self) -> int | None:
        return self.call.seed if self.call is not None else None

    async def _flush(self, call: ModelCall) -> None:
        if not call.pending:
            return
        text = "".join(call.pending)
        call.pending.clear()
        self.shown.append(text)
        frame = {"type": "delta", **self.delta_fields, "text": text}
        timeline.mark("delta_flushed", self.key)
        await self.lease.append([frame])

    async def _wait(self, tasks: set[asyncio.Future[Any]], limit_s: float) -> bool:
        done, _ = await asyncio.wait(tasks, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)

    async def run(self) -> dict[str, Any]:
        """Stream the reply; return the turn's record as a dict."""
        cancel = asyncio.ensure_future(self.stop_event.wait())
        try:
            if self.call is None:
                self.call = ModelCall(self.config, self.history, key=self.key)
            reader = self.call.reader
            await self._pump(self.call, cancel)
            if cancel.done() and not reader.done():
                if self.stop_event in _interrupted:
                    self.error = ServerStopping("the server stopped before the reply ended")
                else:
                    self.cancelled = True
                await self.call.close()
            elif not reader.done():  # timed out
                self.error = TimeoutError(f"no end after {generation_timeout_s():.0f} s")
                await self.call.close()
            elif reader.exception() is not None:
                self.error = reader.exception()
            await self._flush(self.call)
        except LeaseLost as exc:  # claimed as lost meanwhile: its claimer ends it
            log.warning("generation %s lost its lease", self.generation_id)
            self.error = exc
        except Exception as exc:  # Redis away, a broken arm config or a relay bug: turn failed
            if redis_unavailable(exc):
                _redis_outage.failed(exc)
            else:
                log.exception("generation %s failed", self.generation_id)
            self.error = exc
        finally:
            cancel.cancel()
            if self.call is not None and not self.call.reader.done():
                # A failure or a cancellation (shutdown) mid-stream: close the request too,
                # or the model server goes on generating a reply nobody reads.
                with contextlib.suppress(Exception):
                    await self.call.close(grace_s=1.0)
        return self._record()

    async def _pump(self, call: ModelCall, cancel: asyncio.Future[Any]) -> None:
        reader = call.reader
        loop = asyncio.get_running_loop()
        deadline = loop.time() + generation_timeout_s()
        interval = flush_interval_s()
        while not (reader.done() or cancel.done()) and loop.time() < deadline:
            if not call.pending:
                await _first_of(call.arrival(), (reader, cancel), KEEPALIVE_S)
                if not (call.pending or reader.done() or cancel.done()):
                    # A slow model: keep the in-flight marker alive.
                    await self.lease.touch()
                    continue
            # Leading edge: the first delta after a pause goes out at once; the rest coalesce.
            # The interval counts from the flush's start, so the store's write time (tens of
            # ms under load) does not add to every gap the participant sees.
            next_flush = loop.time() + interval
            await self._flush(call)
            await self._wait({reader, cancel}, max(0.0, next_flush - loop.time()))

    def _record(self) -> dict[str, Any]:
        record = self.call.stream.record if self.call is not None else None
        out: dict[str, Any] = record.as_dict() if record is not None else {}
        config = self.config
        out.setdefault("backend", config.get("backend", ""))
        out.setdefault("model", config.get("model", ""))
        shown = "".join(self.shown)
        if self.cancelled:
            out.update(finish_reason="cancelled", text=shown)
        if self.error is not None:
            message = out.get("error") or f"{type(self.error).__name__}: {self.error}"
            out.update(
                finish_reason="error",
                text=shown,
                error=message,
                permanent=bool(getattr(self.error, "permanent", False)),
            )
        out.setdefault("text", shown)
        return out


async def generation_end(lease: Lease, frames: list[Frame]) -> None:
    """Publish a generation's end frames and clear its marker; failures are only logged."""
    try:
        await lease.end(frames)
    except LeaseLost:  # its claimer (studyapp/writing/lost.py) ended it
        log.warning("generation %s lost its lease before its end", lease.generation_id)
    except Exception as exc:
        if redis_unavailable(exc):
            _redis_outage.failed(exc)
        else:
            log.exception("generation %s could not publish its end", lease.generation_id)
    else:
        _redis_outage.ok()


@dataclass(frozen=True)
class Resume:
    """What a (re)connecting client gets after its ``state`` frame."""

    generation: dict[str, Any] | None  # {"generation_id", "turn"} still streaming
    retry_turn: int | None  # unanswered turn with nothing in flight: offer Retry
    last_seq: int  # the client's new "last seen"; ``frames`` all come after it
    frames: list[Frame]


def resume_plan(*, pending_turn: int | None, snapshot: Snapshot, client_seq: int | None) -> Resume:
    """Decide what to replay, given the database (read first) and the store (read second).

    A client that already holds part of the streaming reply (``client_seq`` within it) resumes
    after ``client_seq``; any other client gets the reply in flight from its turn_start.
    """
    frames, tail, marker = snapshot.frames, snapshot.tail, snapshot.generation
    if pending_turn is None:
        # Finished turns come from the database; a turn_end still on its way is idempotent.
        return Resume(None, None, tail, [])
    if marker is not None and marker["turn"] == pending_turn:
        start = marker["start_seq"]
        resumes = client_seq is not None and start <= client_seq <= tail
        after = client_seq if resumes and client_seq is not None else start - 1
        generation = {"generation_id": marker["generation_id"], "turn": marker["turn"]}
        return Resume(generation, None, after, [f for f in frames if f["seq"] > after])
    starts = [f for f in frames if f["type"] == "turn_start" and f["turn"] == pending_turn]
    if starts and any(f["type"] in END_TYPES and f["seq"] > starts[-1]["seq"] for f in frames):
        # The generation ended between the two reads: replay it whole, end included.
        after = starts[-1]["seq"] - 1
        return Resume(None, None, after, [f for f in frames if f["seq"] > after])
    return Resume(None, pending_turn, tail, [])
