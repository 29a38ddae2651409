"""Calling the (sync) database services from the socket and the relay.

The event loop relays every reply of the process, so the database work must not hold the GIL
it needs. Where a call runs:

- PostgreSQL with ``WRITING_DB_PROCESSES`` > 0 (the default): in that many worker processes of
  this ASGI process (studyapp/realtime/dbprocesses.py), started with the server
  (studyapp/realtime/lifespan.py) or on first use. The loop only pickles the call and its result. A
  thread running the services' Python would take the GIL from the loop whenever the loop
  waited, for up to a switch interval (5 ms) each time: at 200 simultaneous messages that
  delayed the first tokens by tens to hundreds of ms (bench/README.md, Relay).
  With ``WRITING_DB_PIPE`` off, the processes are a ``concurrent.futures.ProcessPoolExecutor``
  instead: its feeder and result threads take the GIL from the loop at every call.
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
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from studyapp.realtime import dbprocesses, dbworker

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
        call = functools.partial(fn, *args, **kwargs)
        if not settings.WRITING_DB_PIPE:
            return await _pool_call(call)
        return await dbprocesses.call(call, worker_processes())

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
    pool = _process_pool()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, dbworker.call, call)
    except BrokenProcessPool as exc:
        with _lock:
            if _processes is pool:
                _processes = None
        pool.shutdown(wait=False)
        raise dbprocesses.DatabaseWorkerLost(str(exc)) from exc


def warm_up() -> None:
    """Start the worker processes now, so the first participant does not wait for them."""
    if worker_processes() > 0 and not settings.WRITING_DB_PIPE:
        _process_pool().submit(dbworker.pid).result()
    elif worker_processes() > 0:
        dbprocesses.start(worker_processes())


def shutdown() -> None:
    """Stop this process's worker processes (server shutdown, tests) once they have answered
    the calls they have; a later call starts new ones."""
    global _processes
    dbprocesses.stop(wait=True)
    with _lock:
        pool, _processes = _processes, None
    if pool is not None:
        pool.shutdown(wait=True)
