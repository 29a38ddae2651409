"""Calling the (sync) database services from the socket and the relay.

The event loop relays every reply of the process, so the database work must not hold the GIL
it needs. Where a call runs:

- PostgreSQL with ``WRITING_DB_PROCESSES`` > 0 (the default): in that many worker processes of
  this ASGI process (studyapp/realtime/dbprocesses.py), started with the server
  (studyapp/realtime/lifespan.py) or on first use. The loop only pickles the call and its result. A
  thread running the services' Python would take the GIL from the loop whenever the loop
  waited, for up to a switch interval (5 ms) each time: at 200 simultaneous messages that
  delayed the first tokens by tens to hundreds of ms (bench/README.md, Relay).
- PostgreSQL with ``WRITING_DB_PROCESSES = 0``: ``WRITING_DB_THREADS`` threads (the tests'
  setting: their database and settings overrides live in the test process).
- SQLite (``make run``): Django's one thread-sensitive thread, since SQLite has one writer and
  parallel transactions fail with "database is locked".

Not Django's thread-sensitive thread on PostgreSQL: it serialises the database work of every
socket in the process behind one thread. The services are self-contained (each opens its own
transaction), so any worker will do. Their arguments, results and exceptions must pickle.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from studyapp.realtime import dbprocesses

_lock = threading.Lock()
_threads: ThreadPoolExecutor | None = None


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
        return await dbprocesses.call(functools.partial(fn, *args, **kwargs), worker_processes())

    return run


def warm_up() -> None:
    """Start the worker processes now, so the first participant does not wait for them."""
    if worker_processes() > 0:
        dbprocesses.start(worker_processes())


def shutdown() -> None:
    """Stop this process's worker processes (server shutdown, tests) once they have answered
    the calls they have; a later call starts new ones."""
    dbprocesses.stop(wait=True)
