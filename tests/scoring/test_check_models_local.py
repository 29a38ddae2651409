"""check_models on the transformers backend, as an operator runs it: a process of its own that
ends with exit status 0 (it once printed success and then aborted with status 134)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from django.conf import settings

from studyapp.studies.models import Condition
from tests.writing.conftest import _database_url

pytestmark = [pytest.mark.django_db(transaction=True)]
REPO = Path(__file__).resolve().parents[2]


def test_check_models_exits_cleanly_on_a_local_model_with_an_adapter(
    demo_version, tiny_model, tiny_adapter
):
    config = {
        "name": "local",
        "backend": "transformers",
        "model": str(tiny_model),
        "adapter": str(tiny_adapter),
        "device": "cpu",
        # Greedy: a random-weight model sampled may write only tokens that show no text.
        "sampling": {"temperature": 0.0, "max_tokens": 8},
    }
    Condition.objects.create(version=demo_version, name="local", backend="transformers",
                             config=config)  # fmt: skip
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.writing.server_settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check_models", "demo"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("[ok  ] turn 2") == 4  # three offline arms and the local one
    assert "local (transformers):" in done.stdout
