"""The dashboards on SQLite (the ``make run`` demo), in a subprocess with its own database."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    db = tmp_path_factory.mktemp("sqlite-demo") / "db.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env["DATABASE_URL"] = f"sqlite:///{db}"
    result = subprocess.run(
        [sys.executable, "-m", "tests.dashboards.sqlite_demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_every_dashboard_page_renders_on_sqlite_with_a_single_rating(demo):
    assert demo["status"] == {
        "index": 200,
        "study": 200,
        "study_itt": 200,
        "monitor": 200,
        "conversation": 200,
    }


def test_a_lone_in_chat_rating_is_plotted_without_an_interval_on_sqlite(demo):
    (arm,) = [name for name, (turns, _, _) in demo["engagement"].items() if turns]
    turns, means, counts = demo["engagement"][arm]
    assert (turns, means, counts) == ([3], [7.0], [1])
