"""Production defaults: no start without a real SECRET_KEY, `check --deploy` clean, and a CSP."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What the test process sets for itself, which a production environment would not have.
OWN = ("SECRET_KEY", "SECURE_SSL_REDIRECT", "SECURE_COOKIES", "DEBUG", "DJANGO_SETTINGS_MODULE")


def _env(**values: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in OWN}
    return {**base, "DJANGO_SETTINGS_MODULE": "studyapp.settings", **values}


def _example_env() -> dict[str, str]:
    """The production values .env.example shows, uncommented lines only."""
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.split("#")[0].strip()
    return values


def _start_server_app(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Load the ASGI application, as uvicorn does when it starts."""
    code = "import studyapp.asgi; from django.conf import settings; print(settings.DEBUG)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("key", [None, "", "change-me", "dev-only-insecure-key-change-me"])
def test_production_refuses_to_start_without_a_real_secret_key(key: str | None) -> None:
    env = _env(DEBUG="false")
    if key is not None:
        env["SECRET_KEY"] = key
    result = _start_server_app(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY is not set (or is a published default) and DEBUG is off" in result.stderr


def test_debug_runs_on_the_development_key() -> None:
    result = _start_server_app(_env(DEBUG="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_a_command_that_signs_nothing_runs_without_a_key(tmp_path: Path) -> None:
    """CI and newcomers run the migrations check with no production environment."""
    env = _env(DEBUG="false", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "No changes detected" in result.stdout


def test_check_deploy_is_clean_under_the_example_production_settings() -> None:
    example = _example_env()
    assert example["DEBUG"] == "false"
    assert example["SECRET_KEY"] == "change-me"
    # The example's placeholder is refused (above); a deployment generates its key.
    example["SECRET_KEY"] = secrets.token_urlsafe(50)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env={**_env(), **example, "DB_POOL_MAX_SIZE": "0"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_every_page_carries_a_content_security_policy(client) -> None:
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy
