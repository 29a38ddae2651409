"""Calling the (sync) services from the socket and the relay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings


def _one_thread() -> bool:
    # SQLite (``make run``) has one writer: parallel transactions fail with "database is locked".
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


def in_db_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a coroutine function that runs in a pool thread, closing stale connections.

    Not in Django's single "thread-sensitive" thread, the default: that thread serialises the
    database work of every socket in the process, so under load one participant's message
    waited for everyone else's writes. The services are self-contained (each opens its own
    transaction), so any thread will do, except on SQLite (see ``_one_thread``).
    """
    return database_sync_to_async(fn, thread_sensitive=_one_thread())
