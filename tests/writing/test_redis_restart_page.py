"""The writing page in headless Chromium across Redis restarts: a page whose last seq is from
before a restart reconnects while the next reply streams, and shows that reply whole; a page
whose socket stayed open through a restart gets its next reply.

The live server runs on a redis-server of this test's own (tests/writing/private_redis.py).
Database reads happen outside the Playwright block, as in test_browser_page.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

import pytest
from websockets.asyncio.client import connect

from studyapp.writing.models import Message, Role
from tests.writing.conftest import LiveServer, make_participation, token_for
from tests.writing.private_redis import PrivateRedis
from tests.writing.test_browser_page import Browser, _session_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server_on_private_redis(tmp_path, settings):
    redis = PrivateRedis(tmp_path)
    redis.start()
    settings.REDIS_URL = redis.url
    server = LiveServer(tokens_per_second=20)
    try:
        server.wait_ready()
        yield server, redis
    finally:
        server.stop()
        redis.stop()


def _send_elsewhere(server: LiveServer, participation, text: str, past_seq: int) -> None:
    """From another tab: send ``text`` and return once its reply is numbered past ``past_seq``."""

    async def run() -> None:
        url = f"{server.ws_url}/ws/study/demo/?token={token_for(participation)}"
        async with connect(url, origin=server.url, open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "hello", "last_seq": None}))
            await ws.send(json.dumps({"type": "send", "text": text, "client_msg_id": "tab-2"}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if frame.get("seq", 0) > past_seq:
                    return

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catch(errors, lambda: asyncio.run(run())))
    thread.start()
    thread.join(30)
    assert not errors, errors


def _catch(errors: list[BaseException], fn: Any) -> None:
    try:
        fn()
    except BaseException as exc:
        errors.append(exc)


def test_a_page_reconnecting_after_a_redis_restart_shows_the_next_reply_whole(
    server_on_private_redis, demo_version
):
    from playwright.sync_api import sync_playwright

    server, redis = server_on_private_redis
    participation = make_participation(demo_version)
    session_key = _session_for(participation)
    seqs: list[int] = []
    live: list[Any] = []
    held: list[Any] = []

    def relay(ws: Any) -> None:
        if held:  # the page's socket is down: it reaches nothing until the test lets it
            held.append(ws)
            return
        to_server = ws.connect_to_server()

        def down(message: str | bytes) -> None:
            seqs.append(json.loads(message).get("seq", 0))
            ws.send(message)

        to_server.on_message(down)
        live.append(ws)

    with sync_playwright() as pw:
        browser = Browser(pw, server.url, session_key)
        page = browser.page
        page.route_web_socket(re.compile(r".*/ws/study/.*"), relay)
        browser.open()
        browser.send("Help me write a blog post about budget travel in Lisbon")
        browser.streaming_text(10)
        page.click("#stop")
        browser.finished_reply(1)
        page_seq = max(seqs)

        held.append(None)  # from now on the page's sockets go nowhere
        live[-1].close(code=4000, reason="network lost")
        while len(held) < 2:
            page.wait_for_timeout(50)
        redis.restart()  # the counter is gone: the next reply is numbered from 1 again
        _send_elsewhere(server, participation, "Make it warmer, please", page_seq + 2)

        held.pop(0)
        held.pop().close(code=4000, reason="network back")  # the page reconnects, for real
        shown = browser.streaming_text(5)
        final = browser.finished_reply(2)

        redis.restart()  # again, under the page's open socket this time
        browser.send("Now a closing paragraph")
        third = browser.finished_reply(3)
        typed = page.input_value("#chat-input")
        errors = browser.errors
        browser.close()

    assert errors == []
    assert final.startswith(shown)  # the page began the reply at its start, not mid-way
    replies = {
        m.turn: m.text
        for m in Message.objects.filter(participation=participation, role=Role.ASSISTANT)
    }
    assert (replies[2], replies[3]) == (final, third)
    assert typed == ""  # the message was acknowledged
