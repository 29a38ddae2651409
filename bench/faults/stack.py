"""The campaign's whole set-up in one temporary folder: PostgreSQL, Redis, the model server,
Celery and the two ASGI processes, their environment, and their logs counted per scenario."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.faults import study
from bench.faults.services import (
    SECRET_KEY,
    AppProcess,
    Celery,
    ModelServer,
    Postgres,
    Redis,
    stop_process,
)

# Settings the campaign sets itself: whatever the calling shell says, its servers and database
# are its own.
OWN = ("DATABASE_URL", "REDIS_URL", "VLLM_URL", "DB_POOL_MAX_SIZE", "DJANGO_SETTINGS_MODULE")
ERROR_LINE = re.compile(r"^(ERROR|CRITICAL)\b|^\[[^\]]*: (ERROR|CRITICAL)/")
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class LogCounts:
    lines: int = 0
    errors: int = 0  # lines logged at ERROR or CRITICAL
    tracebacks: int = 0


def count_log(text: str) -> LogCounts:
    lines = text.splitlines()
    return LogCounts(
        lines=len(lines),
        errors=sum(bool(ERROR_LINE.match(line)) for line in lines),
        tracebacks=text.count(TRACEBACK),
    )


class Stack:
    def __init__(self, *, tps: float, tokens: int, celery: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
        self.root.chmod(0o755)  # PostgreSQL's own user must reach its folder in it
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.postgres = Postgres(self.root)
        self.redis = Redis(self.root)
        self.model = ModelServer(self.logs, tps, tokens)
        self.models = [self.model]  # replicas; the app fails over between them (VLLM_URL)
        self.env = {k: v for k, v in os.environ.items() if k not in OWN} | {
            "DATABASE_URL": self.postgres.url(study.DATABASE),
            "REDIS_URL": self.redis.url(),
            "VLLM_URL": self.model.url(),
            "SECRET_KEY": SECRET_KEY,
            "DJANGO_SETTINGS_MODULE": "bench.faults.settings",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "RATE_LIMITS": "0",  # every simulated participant comes from one address
        }
        self.apps = [AppProcess(f"asgi-{i}", self.env, self.logs / f"asgi-{i}.log") for i in (0, 1)]
        self.celery = Celery(self.logs, self.env) if celery else None

    def start(self) -> None:
        """Every server but the ASGI processes (each scenario starts fresh ones), the database
        migrated and the study loaded."""
        self.postgres.init()
        self.postgres.start()
        study.create_database(self.postgres.url("postgres"))
        self.redis.start()
        for model in self.models:
            model.start()
        study.django_setup({k: self.env[k] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")})
        study.load_study(self.env["VLLM_URL"])
        if self.celery is not None:
            self.celery.start()

    # -- the ASGI processes -------------------------------------------------------------------
    def start_apps(self) -> None:
        for app in self.apps:
            app.start()
        for app in self.apps:
            app.wait_ready()

    def stop_apps(self, limit_s: float) -> list[float | None]:
        """SIGTERM to both at once: the seconds each took to exit (None: killed at the limit)."""
        with ThreadPoolExecutor(len(self.apps)) as pool:
            return list(pool.map(lambda app: app.terminate(limit_s), self.apps))

    def ports(self) -> list[int]:
        return [app.port for app in self.apps]

    # -- logs ---------------------------------------------------------------------------------
    def log_mark(self) -> dict[Path, int]:
        """Where each of the app's logs ends now."""
        return {path: path.stat().st_size for path in self._app_logs()}

    def log_counts(self, mark: dict[Path, int]) -> LogCounts:
        """What the app (ASGI processes and Celery) logged since ``mark``."""
        total = LogCounts()
        for path in self._app_logs():
            with path.open("rb") as log:
                log.seek(mark.get(path, 0))
                counts = count_log(log.read().decode("utf-8", "replace"))
            total.lines += counts.lines
            total.errors += counts.errors
            total.tracebacks += counts.tracebacks
        return total

    def _app_logs(self) -> list[Path]:
        return [p for p in self.logs.glob("*.log") if p.name.startswith(("asgi-", "celery-"))]

    # -- the end ------------------------------------------------------------------------------
    def close(self, keep: bool) -> None:
        """Stop everything; remove the folder unless ``keep`` (its logs stay readable)."""
        for app in self.apps:
            if app.running():
                app.terminate(10)
        if self.celery is not None:
            self.celery.stop()
        for model in self.models:
            if model.process is not None:
                stop_process(model.process)
        if self.redis.process is not None:
            stop_process(self.redis.process)
        if self.postgres.data.exists():
            with contextlib.suppress(RuntimeError):  # it was not running
                self.postgres.stop("immediate")
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)
