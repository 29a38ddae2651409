"""The inside of a database worker process (see studyapp/writing/dbcalls.py).

Imports nothing from Django at module level: a spawned worker unpickles its initializer
before Django is set up.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

PARENT_CHECK_S = 1.0


def start(settings_module: str, databases: dict[str, Any], parent: int) -> None:
    """Set Django up with the parent's settings module and databases (a test run renames them)."""
    # The parent stops its workers when it exits, after its graceful shutdown, which still
    # stores what closing sockets report: a Ctrl-C or a SIGTERM sent to the whole process
    # group (a terminal, systemd, a container stop) must not stop them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A worker holds its own end of the pipe it reads calls from, so a parent that was killed
    # leaves it waiting for ever, holding a database connection: it checks instead.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="parent").start()
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    from django.conf import settings

    settings.DATABASES = databases
    import django

    django.setup()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def call(fn: Callable[[], Any]) -> Any:
    """Run one service call, closing stale connections around it as Django's handlers do."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return fn()
    finally:
        close_old_connections()


def pid() -> int:
    return os.getpid()
