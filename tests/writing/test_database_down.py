"""While PostgreSQL cannot be reached, pages and sockets say so at once.

A live server reaches the test database through a TCP proxy that the test cuts (the shared
PostgreSQL keeps running). Pages then answer a 503 page with Retry-After instead of waiting
for a connection and failing with a 500; the writing socket's connect answers an
``unavailable`` error frame and closes with 1013, after which the page reconnects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from studyapp.writing.protocol import ERROR_CODES
from tests.tcp_proxy import CuttableProxy
from tests.writing.conftest import (
    LiveServer,
    _database_url,
    database_address,
    db,
    make_participation,
    token_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Generous: a page that waited for a connection as before (30 s) would trip it.
ANSWER_WITHIN_S = 15


@pytest.fixture
def proxied_server(django_db_blocker, tmp_path: Path) -> Iterator[tuple[LiveServer, CuttableProxy]]:
    proxy = CuttableProxy(database_address())
    server = LiveServer(
        tokens_per_second=400,
        database_url=_database_url("127.0.0.1", proxy.port),
        log=tmp_path / "server.log",
    )
    try:
        server.wait_ready()
        yield server, proxy
    finally:
        proxy.close()
        server.stop()


@pytest.mark.parametrize("pooled", [True, False], ids=["pooled-connection-cut", "no-connection"])
async def test_pages_answer_503_while_the_database_is_down(proxied_server, demo_version, pooled):
    """Both ways a page meets the outage: its pooled connection breaks under it, or it waits
    for one that cannot be opened (which took the pool's 30 s)."""
    server, proxy = proxied_server
    async with httpx.AsyncClient(base_url=server.url, timeout=ANSWER_WITHIN_S) as client:
        if pooled:
            page = await client.get("/study/demo/")
            assert page.status_code < 500  # the server works through the proxy
        proxy.cut()
        page = await client.get("/study/demo/")

    assert page.status_code == 503
    assert int(page.headers["Retry-After"]) > 0
    assert "The study is briefly unavailable" in page.text


async def test_the_socket_refuses_its_connect_while_the_database_is_down(
    proxied_server, demo_version
):
    server, proxy = proxied_server
    participation = await db(make_participation, demo_version)
    url = f"{server.ws_url}/ws/study/demo/?token={token_for(participation)}"
    async with connect(url, origin=server.url, open_timeout=10) as ws:  # a working socket
        await ws.send(json.dumps({"type": "hello", "last_seq": None, "focused": True}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 15))["type"] == "state"
        proxy.cut()
    # Its close could not be recorded: said in a line, not a traceback.

    async with connect(url, origin=server.url, open_timeout=ANSWER_WITHIN_S) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_WITHIN_S))
        await asyncio.wait_for(ws.wait_closed(), ANSWER_WITHIN_S)

    assert frame["type"] == "error"
    assert frame["code"] == "unavailable"
    assert ws.close_code == 1013
    log = server.log.read_text()
    assert "presence not recorded" in log
    assert "Traceback" not in log, log


async def test_a_frame_met_by_the_outage_gets_unavailable_not_a_traceback(
    proxied_server, demo_version
):
    server, proxy = proxied_server
    participation = await db(make_participation, demo_version)
    url = f"{server.ws_url}/ws/study/demo/?token={token_for(participation)}"
    async with connect(url, origin=server.url, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "hello", "last_seq": None, "focused": True}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 15))["type"] == "state"
        proxy.cut()
        await ws.send(json.dumps({"type": "heartbeat", "focused": True}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_WITHIN_S))

    assert frame == {
        "type": "error",
        "code": "unavailable",
        "message": ERROR_CODES["unavailable"],
        "of": "heartbeat",
    }
    log = server.log.read_text()
    assert "heartbeat frame not handled, database unavailable" in log
    assert "Traceback" not in log, log
