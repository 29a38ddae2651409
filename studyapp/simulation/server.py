"""The app under uvicorn in a child process on a free loopback port.

``serve_app`` serves it for one simulation run (when no --url is given): on this process's
database and settings, exactly as ``make run`` serves it (with its embedded defaults: SQLite, the
in-memory channel layer, eager Celery tasks, the offline backend), stopped when the run ends.
The pieces below it (``app_start``, ``port_wait``, ``app_stop``) are the one way any caller
starts and stops such a server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from django.conf import settings
from django.db import connection

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(host: str = "", port: int = 0) -> str:
    """This process's database as a URL, so that the server uses the same one (a test's own
    database included); ``host``/``port`` reach the same PostgreSQL database another way."""
    cfg = connection.settings_dict
    if cfg["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(cfg['NAME']).resolve()}"
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    host = host or cfg.get("HOST") or "127.0.0.1"
    port = port or cfg.get("PORT") or 5432
    return f"postgres://{cfg['USER']}{password}@{host}:{port}/{cfg['NAME']}"


def app_start(
    *, port: int, env: Mapping[str, str], options: Sequence[str] = (), log: Path | None = None
) -> subprocess.Popen[bytes]:
    """uvicorn serving ``studyapp.asgi:application`` on ``127.0.0.1:port`` with ``env`` added to
    this process's environment; its output goes to ``log`` (appended), else to ours."""
    output = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable, "-m", "uvicorn", "studyapp.asgi:application",
                "--host", "127.0.0.1", "--port", str(port), *options,
            ],
            cwd=settings.BASE_DIR, env={**os.environ, **env}, stdout=output, stderr=output,
            start_new_session=True,  # its database worker processes stop with it
        )  # fmt: skip
    finally:
        if output is not None:
            output.close()  # the server holds its own copy


def port_wait(proc: subprocess.Popen[bytes], port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    """Until the server accepts connections (uvicorn listens once the app is loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app's server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the app's server did not start within {timeout_s:g} s")


def app_stop(proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, as a deploy sends it, then SIGKILL after ``timeout_s``; False when the server
    had to be killed. Whatever is left of its session (database workers) is killed too."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    finally:
        with contextlib.suppress(ProcessLookupError):  # none left: they exited with it
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def app_served(
    *,
    env: Mapping[str, str],
    options: Sequence[str] = (),
    log: Path | None = None,
    start_timeout_s: float = START_TIMEOUT_S,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> Iterator[str]:
    """The app served on a free loopback port (see ``app_start``); yields its base URL."""
    port = free_port()
    proc = app_start(port=port, env=env, options=options, log=log)
    try:
        port_wait(proc, port, start_timeout_s)
        yield f"http://127.0.0.1:{port}"
    finally:
        app_stop(proc, stop_timeout_s)


@contextlib.contextmanager
def serve_app(*, offline_rate: int | None = None, log: Path | None = None) -> Iterator[str]:
    """Serve the app for a simulation run; yields its base URL."""
    env = {
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    if offline_rate:
        env["OFFLINE_TOKENS_PER_SECOND"] = str(offline_rate)
    options = [
        "--no-access-log", "--log-level", "warning", "--ws-per-message-deflate", "false",
        "--timeout-graceful-shutdown", "10",
    ]  # fmt: skip
    with app_served(env=env, options=options, log=log or Path(os.devnull)) as url:
        yield url
