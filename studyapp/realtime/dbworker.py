"""The inside of a database worker process (see studyapp/realtime/dbcalls.py).

Started as ``python -m studyapp.realtime.dbworker FD``: FD is its end of a socket pair with the
ASGI process. It reads the Django setup (settings module and databases: a test run renames
them), then runs calls one at a time, each answered in order. Every message either way is a
4-byte big-endian length, an 8-byte big-endian call id and a pickle; an answer carries its
call's id, so the ASGI process can check that it settles the call it belongs to. Imports
nothing from Django at module level: Django is set up from the first message.
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

SIZE_BYTES = 4
ID_BYTES = 8
HEADER_BYTES = SIZE_BYTES + ID_BYTES
SETUP_ID = 0  # the first message, the Django setup; calls are numbered from 1


def frame(obj: Any, call_id: int = SETUP_ID) -> bytes:
    """``obj`` pickled behind its header; raises (and sends nothing) when it does not pickle."""
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return header(len(payload), call_id) + payload


def header(size: int, call_id: int) -> bytes:
    return size.to_bytes(SIZE_BYTES, "big") + call_id.to_bytes(ID_BYTES, "big")


def read_header(data: bytes | bytearray) -> tuple[int, int]:
    """The payload size and call id of the header at the start of ``data``."""
    size = int.from_bytes(data[:SIZE_BYTES], "big")
    return size, int.from_bytes(data[SIZE_BYTES:HEADER_BYTES], "big")


def _read_exact(stream: Any, size: int) -> bytes | None:
    try:
        data = stream.read(size)
    except ConnectionError:  # a parent killed with answers unread resets the socket
        return None
    return data if data is not None and len(data) == size else None


def _read(stream: Any) -> tuple[int, bytes] | None:
    """The next message's call id and pickle, or ``None`` once the ASGI process has closed its
    end (or died)."""
    head = _read_exact(stream, HEADER_BYTES)
    if head is None:
        return None
    size, call_id = read_header(head)
    payload = _read_exact(stream, size)
    return None if payload is None else (call_id, payload)


def setup(settings_module: str, databases: dict[str, Any]) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    from django.conf import settings

    settings.DATABASES = databases
    import django

    django.setup()


def pool_setup(settings_module: str, databases: dict[str, Any]) -> None:
    """A ``ProcessPoolExecutor`` worker's set-up (``WRITING_DB_PIPE`` off); signals as main()."""
    _ignore_stop_signals()
    setup(settings_module, databases)


def call(fn: Callable[[], Any]) -> Any:
    """Run one service call, closing stale connections around it as Django's handlers do."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return fn()
    finally:
        close_old_connections()


def answer(call_id: int, payload: bytes) -> bytes:
    """The framed reply to one call, with its id: ``("ok", result)`` or ``("error", exception,
    traceback)``.

    A call that does not unpickle here is answered with its error; a result or exception that
    does not pickle, with a ``RuntimeError`` naming it: every call gets exactly one answer.
    """
    try:
        fn = pickle.loads(payload)  # noqa: S301 (our own parent)
        reply: tuple[Any, ...] = ("ok", call(fn))
    except Exception as exc:
        reply = ("error", exc, traceback.format_exc())
    try:
        return frame(reply, call_id)
    except Exception as exc:
        problem = RuntimeError(f"the database call's {reply[0]} could not be sent back: {exc!r}")
        return frame(("error", problem, traceback.format_exc()), call_id)


def serve(sock: socket.socket) -> None:
    stream = sock.makefile("rb")
    first = _read(stream)
    if first is None:
        return
    setup(*pickle.loads(first[1]))  # noqa: S301 (our own parent)
    while (message := _read(stream)) is not None:
        try:
            sock.sendall(answer(*message))
        except OSError:  # the ASGI process has gone: nobody is waiting for the answer
            return


def pid() -> int:
    return os.getpid()


def main() -> None:
    # The parent stops its workers when it exits, after its graceful shutdown, which still
    # stores what closing sockets report: a Ctrl-C or a SIGTERM sent to the whole process
    # group (a terminal, systemd, a container stop) must not stop them first. A parent that
    # was killed closes the socket, and the worker exits.
    _ignore_stop_signals()
    with socket.socket(fileno=int(sys.argv[1])) as sock:
        serve(sock)


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


if __name__ == "__main__":
    main()
