"""Calling the (sync) database services from the socket and the relay.

The event loop relays every reply of the process, so the database work must not hold the GIL
it needs. Where a call runs:

- PostgreSQL with ``WRITING_DB_PROCESSES`` > 0 (the default): in that many worker processes of
  this ASGI process, a ``concurrent.futures.ProcessPoolExecutor`` (studyapp/realtime/dbworker.py)
  started with the server (studyapp/realtime/lifespan.py) or on first use. The loop only
  pickles the call and unpickles its answer. A thread running the services' Python would take
  the GIL from the loop whenever the loop waited, for up to a switch interval (5 ms) each time:
  at 200 simultaneous messages that delayed the first tokens by tens to hundreds of ms
  (bench/README.md, Relay). The call and its answer are pickled by this module and the worker,
  so one that does not cross fails alone (:class:`DatabaseCallNotSent`, a ``RuntimeError``
  naming it) and every caller gets its own call's answer.
- PostgreSQL with ``WRITING_DB_PROCESSES = 0``: ``WRITING_DB_THREADS`` threads (the tests'
  setting: their database and settings overrides live in the test process).
- SQLite (``make run``): Django's one thread-sensitive thread, since SQLite has one writer and
  parallel transactions fail with "database is locked".

Not Django's thread-sensitive thread on PostgreSQL: it serialises the database work of every
socket in the process behind one thread. The services are self-contained (each opens its own
transaction), so any worker will do. Their arguments, results and exceptions must pickle.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from studyapp.realtime import dbworker


class DatabaseWorkerLost(RuntimeError):
    """The worker process died (or was stopped) before it answered; the call may have run."""


class DatabaseCallNotSent(RuntimeError):
    """The call (its function or arguments) does not pickle: it was not sent and did not run."""


_lock = threading.Lock()
_threads: ThreadPoolExecutor | None = None
_processes: ProcessPoolExecutor | None = None


def _sqlite() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


def worker_processes() -> int:
    return 0 if _sqlite() else settings.WRITING_DB_PROCESSES


def _thread_pool() -> ThreadPoolExecutor:
    global _threads
    with _lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(
                max_workers=settings.WRITING_DB_THREADS, thread_name_prefix="writing-db"
            )
        return _threads


def in_db_worker(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a coroutine function that runs off the event loop (see the module's text)."""
    on_thread: Callable[..., Any]
    if _sqlite():
        on_thread = database_sync_to_async(fn, thread_sensitive=True)
        return on_thread
    if worker_processes() == 0:
        on_thread = database_sync_to_async(fn, thread_sensitive=False, executor=_thread_pool())
        return on_thread

    async def run(*args: Any, **kwargs: Any) -> Any:
        return await _pool_call(functools.partial(fn, *args, **kwargs))

    return run


def _process_pool() -> ProcessPoolExecutor:
    global _processes
    with _lock:
        if _processes is None:
            _processes = ProcessPoolExecutor(
                max_workers=worker_processes(),
                # Not fork: this process runs threads (the connection pool's, the loop's).
                mp_context=multiprocessing.get_context("spawn"),
                initializer=dbworker.pool_setup,
                initargs=(os.environ["DJANGO_SETTINGS_MODULE"], settings.DATABASES),
            )
        return _processes


async def _pool_call(call: Callable[[], Any]) -> Any:
    global _processes
    try:
        payload = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # a lambda, a local class, nesting past the recursion limit
        raise DatabaseCallNotSent(f"the database call could not be sent: {exc!r}") from exc
    pool = _process_pool()
    try:
        answer = await asyncio.get_running_loop().run_in_executor(pool, dbworker.answer, payload)
    except BrokenProcessPool as exc:
        with _lock:
            if _processes is pool:
                _processes = None
        pool.shutdown(wait=False)
        raise DatabaseWorkerLost(str(exc)) from exc
    try:
        status, value, *trace = pickle.loads(answer)  # noqa: S301 (our own child)
    except Exception as exc:  # e.g. an exception class that cannot be rebuilt from its args
        raise RuntimeError(f"the database call's answer could not be read: {exc!r}") from exc
    if status == "ok":
        return value
    value.add_note(f"In the database worker process:\n{trace[0]}")
    raise value


def warm_up() -> None:
    """Start the worker processes now, so the first participant does not wait for them."""
    if worker_processes() > 0:
        # One call per worker: the pool starts a process for each call that finds none idle.
        pool = _process_pool()
        for started in [pool.submit(dbworker.pid) for _ in range(worker_processes())]:
            started.result()


def shutdown() -> None:
    """Stop this process's worker processes (server shutdown, tests) once they have answered
    the calls they have; a later call starts new ones."""
    global _processes
    with _lock:
        pool, _processes = _processes, None
    if pool is not None:
        pool.shutdown(wait=True)
