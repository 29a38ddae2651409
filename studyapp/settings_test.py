"""Test settings: the real PostgreSQL and Redis named by DATABASE_URL and REDIS_URL."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/collabstudy_test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
# DEBUG stays off, as in production, over plain HTTP; the servers the tests start inherit these.
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-any-deployment-0123456789")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("SECURE_COOKIES", "0")
# Every test client and test server comes from 127.0.0.1: the per-address limits are off unless a
# test turns them on (tests/participants/test_rate_limits.py).
os.environ.setdefault("RATE_LIMITS", "0")

from studyapp.settings import *  # noqa: F403

# Eager Celery in unit tests; tests that need a real worker start one explicitly.
CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
OFFLINE_TOKENS_PER_SECOND = 400
# In-process tests run the chat's database calls in threads: a worker process would not see
# their settings overrides. The uvicorn processes the live tests start use worker processes.
WRITING_DB_PROCESSES = 0
