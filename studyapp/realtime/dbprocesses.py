"""The database worker processes of this ASGI process, called from its event loop.

Each worker (studyapp/realtime/dbworker.py) is a child process at the other end of a socket
pair. The event loop writes a call (a pickle, its length and id first) to the worker with the
fewest calls waiting, and reads the answers, which come back in order with their calls' ids, in
a protocol of its own: no thread in this process takes part.
``concurrent.futures.ProcessPoolExecutor`` moved every call and answer through two threads of
its own (a feeder and a result handler), and each took the GIL from the event loop whenever it
ran. ``WRITING_DB_PIPE=0`` uses it still (bench/README.md, Hand-written pieces).

A call is pickled before it is given a place among the waiting answers, so one that cannot be
sent fails alone; an answer whose id is not the next waiting call's means the channel is out of
step, and the worker is replaced rather than hand anyone another call's answer.

A worker is bound to the event loop that first called it; a call from another loop (a test's
next loop) starts fresh workers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings

from studyapp.realtime.dbworker import HEADER_BYTES, frame, read_header

STOP_TIMEOUT_S = 30.0


class DatabaseWorkerLost(RuntimeError):
    """The worker process died (or was stopped) before it answered; the call may have run."""


class DatabaseCallNotSent(RuntimeError):
    """The call (its function or arguments) does not pickle: it was not sent and did not run."""


class _Answers(asyncio.Protocol):
    """The event loop's end of one worker's socket: answers matched to calls in order, each
    checked against its call's id."""

    def __init__(self) -> None:
        self.waiting: collections.deque[tuple[int, asyncio.Future[Any]]] = collections.deque()
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= HEADER_BYTES and not self.lost:
            size, answer_id = read_header(self.buffer)
            if len(self.buffer) < HEADER_BYTES + size:
                return
            payload = bytes(self.buffer[HEADER_BYTES : HEADER_BYTES + size])
            del self.buffer[: HEADER_BYTES + size]
            if not self.waiting or self.waiting[0][0] != answer_id:
                self.broken(f"an answer to call {answer_id} came when another was due")
                return
            _settle(self.waiting.popleft()[1], payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail_waiting("the database worker process stopped")

    def broken(self, reason: str) -> None:
        """Fail every waiting call and close the socket: no answer on it can be trusted to
        belong to its call any more, so the worker is replaced."""
        self.lost = True
        self._fail_waiting(f"the database worker's answers are out of step: {reason}")
        if self.transport is not None:
            self.transport.close()

    def _fail_waiting(self, reason: str) -> None:
        while self.waiting:
            _, future = self.waiting.popleft()
            if not future.done():
                future.set_exception(DatabaseWorkerLost(reason))


def _settle(future: asyncio.Future[Any], payload: bytes) -> None:
    if future.done():  # its caller was cancelled; the call still ran
        return
    try:
        status, value, *trace = pickle.loads(payload)  # noqa: S301 (our own child)
    except Exception as exc:  # e.g. an exception class that cannot be rebuilt from its args
        problem = RuntimeError(f"the database call's answer could not be read: {exc!r}")
        future.set_exception(problem)
        return
    if status == "ok":
        future.set_result(value)
    else:
        value.add_note(f"In the database worker process:\n{trace[0]}")
        future.set_exception(value)


class _Worker:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = subprocess.Popen(  # noqa: S603 (this interpreter, a module of ours)
                [sys.executable, "-m", "studyapp.realtime.dbworker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        ours.sendall(frame((os.environ["DJANGO_SETTINGS_MODULE"], settings.DATABASES)))
        self.sock = ours
        self.answers = _Answers()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.attached: asyncio.Future[None] | None = None
        self.arriving = 0
        self.call_ids = itertools.count(1)

    async def call(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        call_id = next(self.call_ids)
        message = _framed(fn, call_id)  # before anything waits for its answer
        self.arriving += 1  # counts as load while it waits for the socket to be attached
        try:
            await self._attached(loop)
        finally:
            self.arriving -= 1
        if self.answers.lost:
            raise DatabaseWorkerLost("the database worker process stopped")
        # Written and appended with no await between: answers come back in this order.
        future = loop.create_future()
        try:
            self.answers.transport.write(message)  # type: ignore[union-attr]
        except BaseException:
            # Perhaps partly written: the next answers could not be matched to their calls.
            self.answers.broken(f"call {call_id} could not be written")
            raise
        self.answers.waiting.append((call_id, future))
        return await future

    async def _attached(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.attached is None:
            self.loop = loop
            self.attached = loop.create_future()
            try:
                await loop.connect_accepted_socket(lambda: self.answers, sock=self.sock)
            except BaseException:
                # Unusable (even if only this caller was cancelled): the next call replaces it.
                self.answers.lost = True
                raise
            finally:
                self.attached.set_result(None)
        await asyncio.shield(self.attached)

    @property
    def usable(self) -> bool:
        return not self.answers.lost and self.process.poll() is None

    def load(self) -> int:
        return len(self.answers.waiting) + self.arriving

    def stop(self, wait: bool) -> None:
        """Let the worker finish the calls it has, then exit (it reads the end of its input)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        if wait:
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        transport = self.answers.transport
        if transport is None or self.loop is None or self.loop.is_closed():
            self.sock.close()
        else:
            self.loop.call_soon_threadsafe(transport.close)


def _framed(fn: Callable[[], Any], call_id: int) -> bytes:
    try:
        return frame(fn, call_id)
    except Exception as exc:  # unpicklable, or too deep to pickle (RecursionError)
        raise DatabaseCallNotSent(f"the database call could not be sent: {exc!r}") from exc


_lock = threading.Lock()
_workers: list[_Worker] = []


def _started(count: int) -> list[_Worker]:
    with _lock:
        for worker in [w for w in _workers if not w.usable]:
            _workers.remove(worker)
            worker.stop(wait=False)
        while len(_workers) < count:
            _workers.append(_Worker())
        return list(_workers)


def start(count: int) -> None:
    """Start ``count`` workers now (the server's startup), so no participant waits for them."""
    _started(count)


async def call(fn: Callable[[], Any], count: int) -> Any:
    """Run ``fn()`` in the least busy of ``count`` workers of this event loop."""
    loop = asyncio.get_running_loop()
    workers = _started(count)
    if any(w.loop is not None and w.loop is not loop for w in workers):
        stop(wait=False)
        workers = _started(count)
    worker = min(workers, key=_Worker.load)
    return await worker.call(fn)


def stop(wait: bool = True) -> None:
    """Stop every worker (server shutdown, tests); a later call starts new ones."""
    with _lock:
        workers = list(_workers)
        _workers.clear()
    for worker in workers:
        worker.stop(wait)


def pids() -> list[int]:
    with _lock:
        return [w.process.pid for w in _workers]
