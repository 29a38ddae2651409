"""The inside of a database worker process (see studyapp/realtime/dbcalls.py).

A worker of the ASGI process's ``concurrent.futures.ProcessPoolExecutor``. It takes the Django
setup (settings module and databases: a test run renames them) when it starts, then runs calls
one at a time. A call crosses as a pickle made by the caller, and its answer as a pickle made
here, so that whatever fails to pickle or unpickle fails that call alone, with a clear error:
the pool's own pickling would break the whole pool on an answer that cannot be read. Imports
nothing from Django at module level: Django is set up by :func:`pool_setup`.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any


def pool_setup(settings_module: str, databases: dict[str, Any]) -> None:
    """A worker's set-up, run once when it starts."""
    # The parent stops its workers when it exits, after its graceful shutdown, which still
    # stores what closing sockets report: a Ctrl-C or a SIGTERM sent to the whole process
    # group (a terminal, systemd, a container stop) must not stop them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    from django.conf import settings

    settings.DATABASES = databases
    import django

    django.setup()


def _exit_with_parent() -> None:
    """Exit once the parent has died: a killed parent never shuts its pool down."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # waits on the parent's sentinel, which a dead parent closes
        os._exit(0)


def call(fn: Callable[[], Any]) -> Any:
    """Run one service call, closing stale connections around it as Django's handlers do."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return fn()
    finally:
        close_old_connections()


def answer(payload: bytes) -> bytes:
    """Run the pickled call ``payload``; its answer pickled: ``("ok", result)`` or
    ``("error", exception, traceback)``.

    A call that does not unpickle here is answered with its error; a result or exception that
    does not pickle, with a ``RuntimeError`` naming it: every call gets exactly one answer.
    """
    try:
        fn = pickle.loads(payload)  # noqa: S301 (our own parent)
        reply: tuple[Any, ...] = ("ok", call(fn))
    except Exception as exc:
        reply = ("error", exc, traceback.format_exc())
    try:
        return pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        problem = RuntimeError(f"the database call's {reply[0]} could not be sent back: {exc!r}")
        return pickle.dumps(("error", problem, traceback.format_exc()))


def pid() -> int:
    return os.getpid()
