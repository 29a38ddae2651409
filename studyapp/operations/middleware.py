"""``/healthz``, ``/readyz`` and ``/metrics``, answered before every other middleware.

Probes come from inside the deployment: a process manager or Kubernetes asks by the pod's
address over plain HTTP, which the host check and the HTTPS redirect would refuse, and
``/readyz`` must report a database outage rather than answer the 503 page."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from studyapp.operations import metrics
from studyapp.operations.health import readiness

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


async def probe_answer(request: HttpRequest) -> HttpResponse:
    if request.path == "/healthz":
        return HttpResponse("ok\n", content_type="text/plain")
    if request.path == "/readyz":
        checks = await readiness(models=request.GET.get("models") != "0")
        ready = all(check.ok for check in checks)
        body: dict[str, Any] = {"ready": ready}
        # Which arm's server is down, and where it is, is for the lab's monitoring only.
        if _authorized(request):
            body["checks"] = {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}
        return JsonResponse(body, status=200 if ready else 503)
    return await _metrics(request)


def _authorized(request: HttpRequest) -> bool:
    """The request carries ``Authorization: Bearer <METRICS_TOKEN>``."""
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


async def _metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        return HttpResponse("metrics are off (METRICS_TOKEN)\n", status=404)
    if not _authorized(request):
        return HttpResponse("a bearer token is needed\n", status=401)
    metrics.register()
    body = await sync_to_async(generate_latest)(REGISTRY)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def probes_middleware(get_response: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
    """Async only: the checks are coroutines, and Django adapts what is below (a sync chain is
    called through a thread, as it would be for a sync view)."""

    async def middleware(request: HttpRequest) -> HttpResponse:
        if request.path in PROBE_PATHS:
            return await probe_answer(request)
        response: HttpResponse = await get_response(request)
        return response

    return middleware


probes_middleware.async_capable = True  # type: ignore[attr-defined]
probes_middleware.sync_capable = False  # type: ignore[attr-defined]
