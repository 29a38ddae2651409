"""Calls on the real-time path that wait out a short Redis outage.

A Redis restart takes a few seconds; a ``send`` that arrives meanwhile should not need its
participant to press Send again. :func:`redis_retry` calls again while the error is Redis
being away (studyapp/realtime/outage.py), with backoff, up to ``SEND_REDIS_WAIT_S``, logging
one warning per outage; past that it raises :class:`RedisAway`, which the socket answers with a
refusal the page retries by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from django.conf import settings

from studyapp.realtime.outage import Outage, redis_unavailable

T = TypeVar("T")

FIRST_DELAY_S = 0.25
MAX_DELAY_S = 2.0


class RedisAway(Exception):
    """Redis stayed unreachable for the whole wait."""


def redis_wait_s() -> float:
    return float(getattr(settings, "SEND_REDIS_WAIT_S", 12))


async def redis_retry(
    call: Callable[[], Awaitable[T]], *, outage: Outage, limit_s: float | None = None
) -> T:
    """``await call()``, called again while Redis is unreachable, for up to ``limit_s``.

    Each try is cut at the deadline too: one may wait for this process's subscription to
    return (studyapp/realtime/framebus.py), longer than the whole wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (redis_wait_s() if limit_s is None else limit_s)
    delay = FIRST_DELAY_S
    while True:
        try:
            async with asyncio.timeout(max(deadline - loop.time(), FIRST_DELAY_S)):
                result = await call()
        except Exception as exc:
            if not redis_unavailable(exc):
                raise
            outage.failed(exc)
            if loop.time() + delay > deadline:
                raise RedisAway(str(exc)) from exc
            await asyncio.sleep(delay)
            delay = min(2 * delay, MAX_DELAY_S)
        else:
            outage.ok()
            return result
