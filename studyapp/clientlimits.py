"""Per-address limits on entering a study and on opening its socket (django-ratelimit, in Redis).

The address is the one the app sees: ``REMOTE_ADDR``, or the socket scope's ``client``. Behind a
proxy uvicorn puts the client's own address there from ``X-Forwarded-For``, but only for
proxies listed in ``FORWARDED_ALLOW_IPS`` (README, "Before launch").

The consent promises that no IP address is stored, so no counter names one: the address is
hashed with a key derived from ``SECRET_KEY`` (an unkeyed hash of an IPv4 address is undone by
trying all 2^32), and a counter lives one window of its rate. An IPv6 address counts by its /64
prefix, which one household or one attacker holds whole.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils.crypto import salted_hmac
from django_ratelimit.core import get_usage

log = logging.getLogger(__name__)

# Counter groups, one per kind of action.
ENTRY = "entry"
CONSENT = "consent"
SOCKET = "socket"


def address_key(address: str) -> str:
    """The counter key of a client address: a keyed hash, never the address itself."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        prefix = address  # not an address (a test client, a unix socket): count it as given
    else:
        network = ipaddress.ip_network(f"{ip}/{64 if ip.version == 6 else 32}", strict=False)
        prefix = str(network)
    return salted_hmac("studyapp.clientlimits", prefix, algorithm="sha256").hexdigest()[:32]


@dataclass(frozen=True)
class _Client:
    """What django-ratelimit reads of a request (its key and rate come from us)."""

    address: str


def _key(group: str, client: _Client) -> str:
    return address_key(client.address)


def client_wait(*, group: str, rate: str, address: str) -> int | None:
    """Count one ``group`` action from ``address``: None while within ``rate`` (a
    django-ratelimit rate such as ``"30/10m"``; empty: no limit), else the seconds until its
    window ends."""
    if not rate or not settings.RATELIMIT_ENABLE:
        return None
    try:
        usage = get_usage(_Client(address), group=group, key=_key, rate=rate, increment=True)
    except Exception as exc:  # a cache outage must not lock participants out
        log.warning("rate limit %s not checked, the cache is unavailable: %r", group, exc)
        return None
    if usage is None or not usage["should_limit"]:
        return None
    return max(1, int(usage["time_left"]))


def request_wait(request: Any, *, group: str, rate: str) -> int | None:
    """``client_wait`` for an HTTP request."""
    return client_wait(group=group, rate=rate, address=request.META.get("REMOTE_ADDR") or "")


async def socket_wait(scope: dict[str, Any], *, rate: str) -> int | None:
    """``client_wait`` for a WebSocket handshake (its ``scope``), off the event loop."""
    if not rate or not settings.RATELIMIT_ENABLE:
        return None  # no hop to a thread for nothing
    client = scope.get("client") or ("", 0)
    return await sync_to_async(client_wait, thread_sensitive=False)(
        group=SOCKET, rate=rate, address=str(client[0])
    )
