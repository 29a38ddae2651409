"""Database writes of the relay that outlast a short database outage.

A reply that streamed to its end must not be lost because PostgreSQL is unreachable for a
while: its write is retried, with backoff, as long as the error is one that a reconnect may
cure, up to ``TURN_STORE_RETRY_S``. The generation's in-flight marker is kept alive meanwhile,
so no other process takes it for a generation whose process died. The writes retried here are
idempotent per generation id, so a write whose answer was lost is not stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from django import db
from django.conf import settings

from studyapp.realtime import framestore
from studyapp.realtime.dbprocesses import DatabaseWorkerLost

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0
# Errors of an unreachable database (a refused or broken connection, the pool's time-out, a
# database worker process gone), not of a bad statement: only these are worth retrying.
TRANSIENT = (
    db.OperationalError,
    db.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    DatabaseWorkerLost,
)


def store_retry_s() -> float:
    return float(getattr(settings, "TURN_STORE_RETRY_S", 120))


def keepalive_s() -> float:
    """How often a generation refreshes its marker when it has no frame to send."""
    return min(5.0, framestore.GENERATION_TTL_S / 3)


async def kept_alive(work: Awaitable[T], key: str | None) -> T:
    """Await ``work`` while refreshing the marker of ``key``'s generation (if a key is given)."""
    task = asyncio.ensure_future(work)
    if key is None:
        return await task
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=keepalive_s())
            if done:
                return task.result()
            try:
                await framestore.frame_store().touch(key)
            except Exception:  # Redis unreachable: the write itself matters more
                log.warning("could not refresh the marker of %s", key, exc_info=True)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def db_retry(
    call: Callable[[], Awaitable[T]], *, key: str | None = None, limit_s: float | None = None
) -> T:
    """``await call()``, called again while it fails with a transient database error, for up
    to ``limit_s`` (``TURN_STORE_RETRY_S``); meanwhile ``key``'s marker is kept alive."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (store_retry_s() if limit_s is None else limit_s)
    delay = FIRST_DELAY_S
    while True:
        try:
            return await kept_alive(call(), key)
        except TRANSIENT as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("database unreachable (%s); retrying in %.1f s", exc, delay)
        await kept_alive(asyncio.sleep(delay), key)
        delay = min(2 * delay, MAX_DELAY_S)
