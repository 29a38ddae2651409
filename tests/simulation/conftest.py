"""Fixtures for simulation runs: the served app reads the project settings (so the offline
rate and eager tasks come from its environment) on the test database and Redis."""

from __future__ import annotations

import pytest


@pytest.fixture
def served_app_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the command's own uvicorn inherits."""
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.writing.server_settings")
    monkeypatch.setenv("CELERY_TASK_ALWAYS_EAGER", "1")
    monkeypatch.setenv("WRITING_DB_PROCESSES", "1")
