"""Generation ids and sampling seeds: unique per process, also after a fork."""

from __future__ import annotations

import os

from studyapp.realtime import generations


def test_a_forked_worker_does_not_repeat_its_parents_draws():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draw, then leave at once
        os.write(write, str(generations._seeds.getrandbits(64)).encode())
        os._exit(0)
    os.close(write)
    child = int(os.read(read, 64).decode())
    os.close(read)
    os.waitpid(pid, 0)
    assert child != generations._seeds.getrandbits(64)
