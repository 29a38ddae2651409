"""The app served on a free loopback port for one simulation run (when no --url is given).

uvicorn runs in a child process on this process's database and settings, exactly as
``make run`` serves it (with its embedded defaults: SQLite, the in-memory channel layer, eager
Celery tasks, the offline backend), and is stopped when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """This process's database as a URL, so that the server uses the same one (a test's own
    database included)."""
    cfg = connection.settings_dict
    if cfg["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(cfg['NAME']).resolve()}"
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    host, port = cfg.get("HOST") or "127.0.0.1", cfg.get("PORT") or 5432
    return f"postgres://{cfg['USER']}{password}@{host}:{port}/{cfg['NAME']}"


@contextlib.contextmanager
def serve_app(*, offline_rate: int | None = None, log: Path | None = None) -> Iterator[str]:
    """Serve the app on a free loopback port; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    if offline_rate:
        env["OFFLINE_TOKENS_PER_SECOND"] = str(offline_rate)
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [
            sys.executable, "-m", "uvicorn", "studyapp.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            "--log-level", "warning", "--ws-per-message-deflate", "false",
            "--timeout-graceful-shutdown", "10",
        ],
        cwd=settings.BASE_DIR, env=env, stdout=output, stderr=output,
        start_new_session=True,  # its database worker processes stop with it
    )  # fmt: skip
    try:
        _wait_ready(proc, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None and hasattr(output, "close"):
            output.close()


def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app's server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the app's server did not start")
