"""The per-address limits count the client address uvicorn gives the app.

Behind a proxy listed in FORWARDED_ALLOW_IPS, uvicorn takes it from X-Forwarded-For, so each
participant behind the proxy has their own count; a client that is not a trusted proxy cannot
dodge the limit by sending the header itself. A real uvicorn serves the app here; the "proxy"
is 127.0.0.1 and the direct client another loopback address.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.participants.journey import prolific_params
from tests.writing.conftest import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup) -> Iterator[LiveServer]:
    live = LiveServer(
        tokens_per_second=100,
        RATE_LIMITS="1",
        ENTRY_RATE_LIMIT="2/m",
        FORWARDED_ALLOW_IPS="127.0.0.1",
        WRITING_DB_PROCESSES="0",  # no socket here: no worker processes to start
    )
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


def _address() -> str:
    """A fresh address: counters outlive a test by up to a minute."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def _enter(client: httpx.Client, server: LiveServer, n: int, forwarded: str) -> int:
    response = client.get(
        f"{server.url}/study/demo/",
        params=prolific_params(f"P{n}"),
        headers={"X-Forwarded-For": forwarded},
    )
    return response.status_code


def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_count(server, demo_version):
    with httpx.Client(timeout=10) as proxy:
        participant = _address()
        codes = [_enter(proxy, server, n, participant) for n in range(3)]
        assert codes == [302, 302, 429]
        assert _enter(proxy, server, 3, _address()) == 302


def test_a_client_that_is_not_a_trusted_proxy_cannot_dodge_the_limit(server, demo_version):
    # Any loopback address but the proxy's, fresh for each run.
    loopback = "127." + _address().removeprefix("10.")
    direct = httpx.HTTPTransport(local_address=loopback)
    with httpx.Client(transport=direct, timeout=10) as client:
        codes = [_enter(client, server, 10 + n, _address()) for n in range(3)]
    assert codes == [302, 302, 429]
