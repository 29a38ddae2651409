"""The inside of a database worker process (see studyapp/writing/dbcalls.py).

Started as ``python -m studyapp.writing.dbworker FD``: FD is its end of a socket pair with the
ASGI process. It reads the Django setup (settings module and databases: a test run renames
them), then runs calls one at a time, each answered in order. Every message either way is a
4-byte big-endian length and a pickle. Imports nothing from Django at module level: Django is
set up from the first message.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

HEADER_BYTES = 4


def frame(obj: Any) -> bytes:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


def _read_exact(stream: Any, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def _read(stream: Any) -> Any:
    """The next message, or ``None`` once the ASGI process has closed its end (or died)."""
    header = _read_exact(stream, HEADER_BYTES)
    if header is None:
        return None
    payload = _read_exact(stream, int.from_bytes(header, "big"))
    return None if payload is None else pickle.loads(payload)  # noqa: S301 (our own parent)


def _setup(settings_module: str, databases: dict[str, Any]) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    from django.conf import settings

    settings.DATABASES = databases
    import django

    django.setup()


def call(fn: Callable[[], Any]) -> Any:
    """Run one service call, closing stale connections around it as Django's handlers do."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return fn()
    finally:
        close_old_connections()


def answer(fn: Callable[[], Any]) -> bytes:
    """The framed reply to one call: ``("ok", result)`` or ``("error", exception, traceback)``.

    A result or exception that does not pickle is answered with a ``RuntimeError`` naming it.
    """
    try:
        reply: tuple[Any, ...] = ("ok", call(fn))
    except Exception as exc:
        reply = ("error", exc, traceback.format_exc())
    try:
        return frame(reply)
    except Exception as exc:
        problem = RuntimeError(f"the database call's {reply[0]} could not be sent back: {exc!r}")
        return frame(("error", problem, traceback.format_exc()))


def serve(sock: socket.socket) -> None:
    stream = sock.makefile("rb")
    setup = _read(stream)
    if setup is None:
        return
    _setup(*setup)
    while (fn := _read(stream)) is not None:
        try:
            sock.sendall(answer(fn))
        except OSError:  # the ASGI process has gone: nobody is waiting for the answer
            return


def pid() -> int:
    return os.getpid()


def main() -> None:
    # The parent stops its workers when it exits, after its graceful shutdown, which still
    # stores what closing sockets report: a Ctrl-C or a SIGTERM sent to the whole process
    # group (a terminal, systemd, a container stop) must not stop them first. A parent that
    # was killed closes the socket, and the worker exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with socket.socket(fileno=int(sys.argv[1])) as sock:
        serve(sock)


if __name__ == "__main__":
    main()
