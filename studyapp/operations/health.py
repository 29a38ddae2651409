"""Readiness checks, each a plain function that reports one dependency."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.urls import get_resolver

from collab_models.arms import ConfigError, cached_arm
from collab_models.probes import probe_health
from studyapp.studies.models import Study
from studyapp.studies.selectors import study_current_version

CHECK_TIMEOUT_S = 2.0
# Model servers are asked at most this often per process, however often a probe polls.
MODEL_CHECK_CACHE_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Check("database", True, "ok")
    except Exception as exc:  # any driver error means "not ready"
        connection.close_if_unusable_or_obsolete()
        return Check("database", False, type(exc).__name__)


async def check_database() -> Check:
    return await sync_to_async(_database)()


async def check_redis() -> Check:
    if not settings.REDIS_URL:
        return Check("redis", True, "not configured (in-memory channel layer, eager tasks)")
    client = aioredis.from_url(
        settings.REDIS_URL,
        socket_timeout=CHECK_TIMEOUT_S,
        socket_connect_timeout=CHECK_TIMEOUT_S,
    )
    try:
        await client.ping()
        return Check("redis", True, "ok")
    except Exception as exc:  # connection refused, timeout, auth: all "not ready"
        return Check("redis", False, type(exc).__name__)
    finally:
        await client.aclose()


def _model_endpoints() -> dict[str, list[str]]:
    """Each arm of the open studies' current versions that talks to a server: its endpoints,
    keyed ``study/arm``."""
    arms: dict[str, list[str]] = {}
    for study in Study.objects.filter(is_open=True):
        try:
            version = study_current_version(study=study)
        except study.versions.model.DoesNotExist:
            continue
        for condition in version.conditions.all():
            try:
                endpoints = list(cached_arm(condition.config).endpoints)
            except ConfigError as exc:
                arms[f"{study.slug}/{condition.name}"] = [f"invalid: {exc}"]
                continue
            if endpoints:
                arms[f"{study.slug}/{condition.name}"] = endpoints
    return arms


_model_cache: tuple[float, list[Check]] | None = None


async def check_models() -> list[Check]:
    """One check per arm: every endpoint of the arm answers ``/health`` with 200."""
    global _model_cache
    if _model_cache and time.monotonic() - _model_cache[0] < MODEL_CHECK_CACHE_S:
        return _model_cache[1]
    arms = await sync_to_async(_model_endpoints)()
    urls = sorted({url for endpoints in arms.values() for url in endpoints if "://" in url})
    results = await asyncio.gather(*(probe_health(url, timeout_s=CHECK_TIMEOUT_S) for url in urls))
    health = {url: result for url, result in zip(urls, results, strict=True)}
    checks = []
    for arm, endpoints in sorted(arms.items()):
        failing = [
            f"{url}: {health[url].detail}" if url in health else url
            for url in endpoints
            if url not in health or not health[url].ok
        ]
        detail = "; ".join(failing) if failing else f"{len(endpoints)} endpoint(s) ok"
        checks.append(Check(f"model:{arm}", not failing, detail))
    _model_cache = (time.monotonic(), checks)
    return checks


def _load_urls() -> None:
    get_resolver().url_patterns  # noqa: B018 (imports every view the first request would)


async def readiness(*, models: bool = True) -> list[Check]:
    """Every dependency's check; ``models=False`` leaves the model servers out (a Kubernetes
    readiness probe should not take every app pod out of service because a GPU is down: the
    participants would then get no page at all instead of the technical-problem page)."""
    # Ready means warm: the URLconf imports the exports' numerical stack, seconds of work that
    # would otherwise fall on the first participant's request.
    await sync_to_async(_load_urls)()
    core = await asyncio.gather(check_database(), check_redis())
    return [*core, *(await check_models() if models else [])]
