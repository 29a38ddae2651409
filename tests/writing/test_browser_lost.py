"""The writing page in headless Chromium when the process streaming its reply died: the page
offers Retry by itself, and a Stop the server cannot act on re-syncs the page instead of
leaving it frozen.

A dead process is played by what it leaves in Redis (a generation begun, streamed a little,
whose marker then expires); the page is served by the session's live servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from studyapp.realtime import framestore
from studyapp.realtime.framestore import frame_store
from studyapp.writing.models import Message, Role
from studyapp.writing.services import message_send
from tests.writing.conftest import make_participation, wait_for
from tests.writing.test_browser_page import Browser, _session_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PARTIAL = "Budget travel starts with "
MARKER_TTL_S = 2


async def _orphan(key: str, generation_id: str, alive: threading.Event) -> None:
    """The dead process's generation: begun, streamed a little, its marker kept alive while
    ``alive`` is set (the page opens meanwhile), then left to expire."""
    start = {"type": "turn_start", "turn": 1, "user_text": "Hi", "generation_id": generation_id}
    marker = {"generation_id": generation_id, "turn": 1, "origin": "12345-deadbeef"}
    await frame_store().begin(key, marker, start)
    await frame_store().append(key, [{"type": "delta", "text": PARTIAL}])
    while alive.is_set():
        await frame_store().touch(key)
        await asyncio.sleep(0.2)


async def _expired(key: str) -> bool:
    return await frame_store().generation(key) is None


async def _claim_when_expired(key: str) -> None:
    """Take the dead reply's claim, as a process that is still resolving it would hold it."""
    await wait_for(functools.partial(_expired, key))
    assert key in await frame_store().lost([key])


@contextlib.contextmanager
def _dying_reply(participation, monkeypatch) -> Iterator[None]:
    """A reply to the stored message "Hi" whose process streams it while the block runs, then
    dies. (Playwright runs an event loop in the test's thread: the store is driven from a
    thread of its own.)"""
    monkeypatch.setattr(framestore, "GENERATION_TTL_S", MARKER_TTL_S)
    alive = threading.Event()
    alive.set()
    with ThreadPoolExecutor(1) as pool:
        orphan = _orphan(participation.public_id.hex, str(uuid.uuid4()), alive)
        done = pool.submit(asyncio.run, orphan)
        try:
            yield
        finally:
            alive.clear()
            done.result()


def _in_thread(coroutine: Any) -> None:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def _open_streaming(pw, server, session_key: str) -> Browser:
    browser = Browser(pw, server.url, session_key)
    browser.open()
    streaming = browser.page.locator(".msg.assistant.streaming .msg-text")
    browser.expect(streaming).to_have_text(PARTIAL)
    browser.expect(browser.page.locator("#stop")).to_be_visible()
    return browser


def _offers_retry(browser: Browser) -> None:
    page, expect = browser.page, browser.expect
    expect(page.locator("#turn-error")).to_be_visible()
    expect(page.locator("#retry")).to_be_enabled()
    expect(page.locator("#stop")).to_be_hidden()
    expect(page.locator(".msg.assistant.streaming")).to_have_count(0)


def _retried(browser: Browser) -> str:
    browser.page.click("#retry")
    browser.expect(browser.page.locator(".msg.assistant.failed")).to_have_count(0)
    return browser.finished_reply(1)


def test_the_page_offers_retry_by_itself_when_the_reply_process_died(
    live_servers, demo_version, monkeypatch
):
    from playwright.sync_api import sync_playwright

    participation = make_participation(demo_version)
    message_send(participation_id=participation.pk, text="Hi", client_msg_id="m1")
    session_key = _session_for(participation)
    with sync_playwright() as pw:
        with _dying_reply(participation, monkeypatch):
            browser = _open_streaming(pw, live_servers[0], session_key)
        _offers_retry(browser)  # no reload, no click: the server ended the dead reply
        text = _retried(browser)
        errors = browser.errors
        browser.close()

    assert errors == []
    replies = Message.objects.filter(participation=participation, role=Role.ASSISTANT)
    assert [(r.is_active, r.text) for r in replies.order_by("id")] == [
        (False, PARTIAL),
        (True, text),
    ]


def test_stop_answered_not_generating_resyncs_the_page(live_servers, demo_version, monkeypatch):
    from playwright.sync_api import sync_playwright

    participation = make_participation(demo_version)
    message_send(participation_id=participation.pk, text="Hi", client_msg_id="m1")
    session_key = _session_for(participation)
    with sync_playwright() as pw:
        with _dying_reply(participation, monkeypatch):
            browser = _open_streaming(pw, live_servers[1], session_key)
        # Another process holds the dead reply's claim: the server can only say that nothing
        # streams, and the page must not stay frozen on its Stop button.
        _in_thread(_claim_when_expired(participation.public_id.hex))
        browser.page.click("#stop")
        _offers_retry(browser)
        _retried(browser)
        errors = browser.errors
        browser.close()

    assert errors == []
