"""The real ASGI app under uvicorn on a loopback port, for the browser tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from studyapp.simulation.server import app_served, database_url


@pytest.fixture
def server(demo_version) -> Iterator[str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.browser.server_settings",
        # The test database pytest-django created ("test_" + the configured name).
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    options = ["--log-level", "warning"]
    with app_served(env=env, options=options, start_timeout_s=30, stop_timeout_s=10) as base:
        yield base
