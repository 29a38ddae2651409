"""Running part of the suite on SQLite, as ``make run`` serves the demo (the suite's database
is PostgreSQL): a test runs a module in its own process with DATABASE_URL naming an empty SQLite
file; the module loads the demo study and prints a JSON object of what it found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO_SPEC = "deploy/studies/collabllm-cowriting.yaml"


def run_on_sqlite(module: str, directory: Path) -> Any:
    """Run ``python -m module`` on a new SQLite database in ``directory``; its last line, parsed."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env["DATABASE_URL"] = f"sqlite:///{directory / 'db.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.splitlines()[-1])


def demo_version() -> Any:
    """In the subprocess, after ``django.setup()``: migrate, load the demo study (offline arms)
    and return its version."""
    from django.core.management import call_command
    from django.db import connection

    from studyapp.studies.models import Study

    assert connection.vendor == "sqlite", connection.vendor
    call_command("migrate", verbosity=0, interactive=False)
    call_command("load_study", DEMO_SPEC, slug="demo", offline=True, stdout=sys.stderr)
    return Study.objects.get(slug="demo").versions.order_by("-number").first()
