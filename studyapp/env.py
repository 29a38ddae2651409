"""Small typed helpers for reading configuration from the environment.

A variable ``NAME`` may instead be given as ``NAME_FILE`` pointing at a file that holds the
value (the usual way secrets are mounted in containers).
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_str(name, "")
    if raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = env_str(name, "")
    return int(raw) if raw else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


# Keys anyone can read in this repository: a production process signing sessions and socket
# tokens with one of them would let anybody forge them.
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-change-me"  # noqa: S105 (published on purpose)
KNOWN_SECRET_KEYS = frozenset({DEVELOPMENT_SECRET_KEY, "change-me"})


def require_secret_key(key: str, *, debug: bool) -> str:
    """Return ``key``, or refuse to start a production (DEBUG off) server without a real one."""
    if not debug and (not key or key in KNOWN_SECRET_KEYS):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set (or is a published default) and DEBUG is off: set SECRET_KEY "
            "(or SECRET_KEY_FILE) to a long random value, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, or set DEBUG=1 "
            "for local development only."
        )
    return key
