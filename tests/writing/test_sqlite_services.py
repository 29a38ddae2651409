"""The chat's plain-SQL send path on SQLite (the ``make run`` demo), in a subprocess with its
own database: no row locks there, and no UPDATE inside WITH."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_message_its_reply_and_presence_are_stored_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "-m", "tests.writing.sqlite_services"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    stored = json.loads(result.stdout.splitlines()[-1])
    assert stored["plan"] == [1, True, [{"role": "user", "content": "Hello"}]]
    assert stored["messages"] == [[1, "user", "Hello", "m-1"], [1, "assistant", "Hi there", ""]]
    assert stored["events"] == ["connect"]
    assert stored["active_seconds"] == 3
