"""The child-process pieces every uvicorn server of the app is started and stopped with."""

from __future__ import annotations

import subprocess
import sys

import pytest

from studyapp.simulation.server import app_stop, free_port, port_wait

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )


def test_port_wait_reports_a_server_that_exited_before_listening():
    proc = _child("raise SystemExit(3)")
    with pytest.raises(RuntimeError, match="exited with 3"):
        port_wait(proc, free_port(), timeout_s=10)


def test_app_stop_says_whether_sigterm_was_enough():
    polite = _child("import time; time.sleep(60)")
    assert app_stop(polite, timeout_s=5) is True

    stubborn = _child(IGNORES_SIGTERM)
    assert stubborn.stdout is not None
    stubborn.stdout.readline()  # its handler is in place
    assert app_stop(stubborn, timeout_s=0.5) is False
    assert stubborn.returncode == -9
