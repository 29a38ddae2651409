"""A redis-server of a test's own, for tests that restart Redis (never the shared one)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.writing.conftest import free_port


class PrivateRedis:
    """A redis-server of this test's own that it may shut down and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return done.stdout.strip()

    def restart(self) -> None:
        """Shut down without saving (a snapshot saved earlier is loaded again) and start."""
        assert self.proc is not None
        self.cli("SHUTDOWN", "NOSAVE")
        self.proc.wait(timeout=10)
        with socket.socket() as probe:  # the old server is gone before the new one starts
            assert probe.connect_ex(("127.0.0.1", self.port)) != 0
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
