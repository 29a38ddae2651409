"""The database worker of an ASGI process that was killed (kill -9) exits quietly: its parent's
socket may be reset rather than closed when answers were still unread, and that is an end of
input, not a traceback in the process's log."""

from __future__ import annotations

import socket
import struct

from studyapp.realtime import dbworker


def test_a_reset_from_a_killed_parent_reads_as_the_end_of_the_calls():
    listener = socket.create_server(("127.0.0.1", 0))
    parent = socket.create_connection(listener.getsockname())
    worker, _ = listener.accept()
    listener.close()
    worker.sendall(b"an answer the parent never read")
    # A killed process's socket closes with unread data: the kernel resets the connection.
    parent.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    parent.close()
    with worker:
        assert dbworker._read(worker.makefile("rb")) is None
