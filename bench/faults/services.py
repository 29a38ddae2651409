"""The servers of the fault campaign, each its own process on a free loopback port, so that a
scenario may stop, kill or restart it: a PostgreSQL cluster (initdb into a temporary folder),
Redis without persistence, the model server (bench/faults/model.py), two ASGI processes started
as README.md's "Running a real study" starts them, and Celery's worker and beat.

Nothing here touches any other server on the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECRET_KEY = "bench-faults-not-secret"  # noqa: S105 - the tokens of a throwaway database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, limit_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port} after {limit_s:g} s")


def stop_process(process: subprocess.Popen, limit_s: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``limit_s``; its process group goes with it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(limit_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# -- PostgreSQL -----------------------------------------------------------------------------
def postgres_bin() -> Path:
    """The newest PostgreSQL server binaries: Debian's, or those on PATH."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path is None:
        raise RuntimeError("no PostgreSQL server binaries (pg_ctl) found")
    return Path(on_path).parent


class Postgres:
    """A cluster of its own. initdb refuses to run as root: as root, the cluster belongs to
    the ``postgres`` user and its commands run through ``runuser``."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.home = root / "postgres"
        self.data = self.home / "data"
        self.log = self.home / "postgres.log"
        self.bin = postgres_bin()

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def init(self) -> None:
        self.home.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session at once (a restart as an operator does it)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"


# -- Redis ----------------------------------------------------------------------------------
class Redis:
    """No snapshots, no append-only file: a restart starts empty, as after a crash."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root),
             "--logfile", str(self.root / "redis.log")],
            start_new_session=True,
        )  # fmt: skip
        wait_port(self.port, 20, self.process)

    def shutdown_nosave(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"],
            capture_output=True,
            check=False,
        )
        if self.process is not None:
            stop_process(self.process)

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


# -- the model server -----------------------------------------------------------------------
class ModelServer:
    def __init__(self, root: Path, tps: float, tokens: int, name: str = "model") -> None:
        self.port = free_port()
        self.root, self.tps, self.tokens, self.name = root, tps, tokens, name
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with (self.root / f"{self.name}.log").open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.faults.model", "--port", str(self.port),
                 "--tps", f"{self.tps:g}", "--tokens", str(self.tokens)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_port(self.port, 30, self.process)

    def kill(self) -> None:
        """SIGKILL: every stream in progress is cut."""
        if self.process is not None:
            self.process.kill()
            stop_process(self.process)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- the app --------------------------------------------------------------------------------
def readme_graceful_timeout() -> int | None:
    """The ``--timeout-graceful-shutdown`` README.md's uvicorn command sets, if any."""
    found = re.search(r"--timeout-graceful-shutdown[ =](\d+)", (REPO / "README.md").read_text())
    return int(found.group(1)) if found else None


class AppProcess:
    """One uvicorn process (README.md's command, on a port of its own), logging to ``log``;
    ``env`` is its whole environment."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name, self.env, self.log = name, env, log
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "uvicorn", "studyapp.asgi:application",
                   "--host", "127.0.0.1", "--port", str(self.port),
                   "--ws-per-message-deflate", "false"]  # fmt: skip
        graceful = readme_graceful_timeout()
        return command + (["--timeout-graceful-shutdown", str(graceful)] if graceful else [])

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=REPO, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self) -> None:
        wait_port(self.port, 90, self.process)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL to the uvicorn process alone, as a crash; its leftovers are reaped after."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self._reap()

    def terminate(self, limit_s: float) -> float | None:
        """SIGTERM, as a deploy sends it: seconds until it exited, or None when it had not
        exited after ``limit_s`` (it is then killed)."""
        if not self.running():
            return 0.0
        assert self.process is not None
        started = time.monotonic()
        self.process.terminate()
        try:
            self.process.wait(limit_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        finally:
            self._reap()
        return time.monotonic() - started

    def _reap(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


class Celery:
    """README.md's Celery worker and beat; ``env`` is their whole environment."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "studyapp"]
        commands = {
            "celery-worker": [*celery, "worker", "-Q", "default,exports,scoring,maintenance"],
            "celery-beat": [*celery, "beat", "-s", str(self.root / "celerybeat-schedule")],
        }
        for name, command in commands.items():
            with (self.root / f"{name}.log").open("a") as log:
                process = subprocess.Popen(
                    command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            self.processes.append(process)

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process, 20)
        self.processes = []
