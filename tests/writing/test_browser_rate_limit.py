"""The writing page waits out a socket refused for its address's rate, then connects.

A live uvicorn with ``SOCKET_RATE_LIMIT=1/8s``: the test spends the page's address's allowance
with a socket of its own, then opens the page in headless Chromium, whose socket is refused
with 4429 and ``retry_after``; the page says why, waits that long, and connects.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from studyapp.participants.tokens import participation_token
from tests.writing.conftest import LiveServer, make_participation
from tests.writing.test_browser_page import Browser, _session_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(django_db_setup) -> Iterator[LiveServer]:
    live = LiveServer(tokens_per_second=100, RATE_LIMITS="1", SOCKET_RATE_LIMIT="1/8s")
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


def _refused_for(server: LiveServer, token: str) -> int:
    """Open sockets until one is refused for the rate; the seconds it was told to wait."""
    url = f"{server.ws_url}/ws/study/demo/?token={token}"
    while True:
        with connect(url, origin=server.url, open_timeout=10) as ws:
            with contextlib.suppress(ConnectionClosed):  # a refused socket closes at once
                ws.send(json.dumps({"type": "hello", "last_seq": None}))
            frame = json.loads(ws.recv(timeout=10))
        if frame.get("code") == "rate_limited":
            return int(frame["retry_after"])


def test_a_page_refused_for_its_rate_says_so_and_connects_after_the_wait(server, demo_version):
    from playwright.sync_api import sync_playwright

    participation = make_participation(demo_version)
    token = participation_token(public_id=str(participation.public_id))
    session_key = _session_for(participation)
    with sync_playwright() as pw:
        browser = Browser(pw, server.url, session_key)
        try:
            while _refused_for(server, token) < 5:  # leave the page time to be refused too
                browser.page.wait_for_timeout(1000)
            browser.page.goto(f"{server.url}/study/demo/write/")
            status = browser.page.locator("#status")
            browser.expect(status).to_contain_text("Too many connections", timeout=5_000)
            browser.connected()
            assert browser.errors == []
        finally:
            browser.close()
