"""The writing page in headless Chromium: a reply survives a reload and a dropped socket; a
side-by-side pick and a regeneration.

Replies stream at 25 tokens/s from the live server (tests/writing/conftest.py), so the page is
reloaded, or its socket cut, in the middle of one. Database reads happen outside the Playwright
block (its sync API runs an event loop in this thread, where Django refuses queries).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.sessions.backends.db import SessionStore

from studyapp.writing.models import Message, Role
from tests.chromium import chromium_launch
from tests.writing.conftest import make_participation, study_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _session_for(participation) -> str:
    session = SessionStore()
    session[f"participation:{participation.study.slug}"] = str(participation.public_id)
    session.create()
    return session.session_key


class Browser:
    def __init__(self, pw, base: str, session_key: str) -> None:
        from playwright.sync_api import expect

        self.expect = expect
        self.browser = chromium_launch(pw)
        self.context = self.browser.new_context()
        self.context.add_cookies([{"name": "sessionid", "value": session_key, "url": base}])
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.base = base

    def open(self, slug: str = "demo") -> None:
        self.page.goto(f"{self.base}/study/{slug}/write/")
        self.connected()

    def connected(self) -> None:
        self.expect(self.page.locator("#status")).to_have_attribute("data-state", "connected")

    def send(self, text: str) -> None:
        self.page.fill("#chat-input", text)
        self.page.click("#send")

    def streaming_text(self, at_least: int) -> str:
        """Wait until the streaming reply shows ``at_least`` characters; return them."""
        self.page.wait_for_function(
            "n => { const el = document.querySelector('.msg.assistant.streaming .msg-text');"
            " return el && el.textContent.length >= n; }",
            arg=at_least,
        )
        return self.page.locator(".msg.assistant.streaming .msg-text").text_content()

    def finished_reply(self, turn: int) -> str:
        reply = self.page.locator(f'.msg.assistant[data-turn="{turn}"]')
        self.expect(reply).to_have_count(1)
        self.expect(reply).not_to_have_class(re.compile(r"\bstreaming\b"))
        return reply.locator(".msg-text").text_content()

    def close(self) -> None:
        self.browser.close()


def _replies(participation) -> dict[int, Message]:
    return {
        m.turn: m for m in Message.objects.filter(participation=participation, role=Role.ASSISTANT)
    }


def test_reload_mid_reply_then_stop(live_servers, demo_version):
    from playwright.sync_api import sync_playwright

    participation = make_participation(demo_version)
    session_key = _session_for(participation)
    with sync_playwright() as pw:
        browser = Browser(pw, live_servers[0].url, session_key)
        page = browser.page
        browser.open()
        browser.expect(page.locator("#finish")).to_be_disabled()
        browser.send("Help me write a blog post about budget travel in Lisbon")
        browser.expect(page.locator("#stop")).to_be_visible()
        browser.expect(page.locator("#send")).to_be_disabled()
        partial = browser.streaming_text(20)

        page.reload()
        browser.connected()
        first = browser.finished_reply(1)
        assert first.startswith(partial[:20])
        users = page.locator(".msg.user").count()
        assistants = page.locator(".msg.assistant").count()
        browser.expect(page.locator("#turn-count")).to_have_text("1")

        browser.send("Make it warmer, please")
        browser.streaming_text(10)
        page.click("#stop")
        stopped = page.locator('.msg.assistant[data-turn="2"]')
        browser.expect(stopped).to_have_class(re.compile(r"\bstopped\b"))
        second = stopped.locator(".msg-text").text_content()
        page.reload()  # a stopped reply is still marked as stopped
        browser.connected()
        browser.expect(stopped).to_have_class(re.compile(r"\bstopped\b"))
        browser.expect(stopped.locator(".msg-text")).to_have_text(second)
        errors = browser.errors
        browser.close()

    assert errors == []
    assert (users, assistants) == (1, 1)  # the half-streamed reply was not shown twice
    replies = _replies(participation)
    assert replies[1].text == first
    assert replies[1].finish_reason == "stop"
    assert replies[2].finish_reason == "cancelled"
    assert replies[2].text == second


def test_a_dropped_socket_reconnects_and_the_reply_arrives_whole(live_servers, demo_version):
    from playwright.sync_api import sync_playwright

    participation = make_participation(demo_version)
    session_key = _session_for(participation)
    sockets = []

    def relay(ws) -> None:
        ws.connect_to_server()  # pass every frame through; the test cuts the page side
        sockets.append(ws)

    with sync_playwright() as pw:
        browser = Browser(pw, live_servers[0].url, session_key)
        page = browser.page
        page.route_web_socket(re.compile(r".*/ws/study/.*"), relay)
        browser.open()
        browser.send("Write a story about a lighthouse keeper")
        before = browser.streaming_text(15)
        sockets[-1].close(code=4000, reason="network lost")
        browser.expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
        browser.connected()
        text = browser.finished_reply(1)
        count = page.locator(".msg.assistant").count()
        doc = page.locator("#document")
        doc.fill("My own first line.")
        page.locator("#chat-input").focus()  # leaving the editor saves it
        browser.expect(page.locator("#doc-status")).to_have_text("Saved")
        errors = browser.errors
        browser.close()

    assert errors == []
    assert len(sockets) >= 2
    assert text.startswith(before[:15])
    assert count == 1
    assert _replies(participation)[1].text == text
    latest = participation.document_versions.order_by("-number").first()
    assert latest.text == "My own first line."


def test_regenerate_a_reply_then_pick_a_side_by_side_reply(live_servers):
    from playwright.sync_api import sync_playwright

    participation = make_participation(study_version("side_by_side: {turns: [2]}"))
    session_key = _session_for(participation)
    with sync_playwright() as pw:
        browser = Browser(pw, live_servers[1].url, session_key)
        page, expect = browser.page, browser.expect
        browser.open("pairs")
        regenerate = page.locator("#regenerate")
        browser.send("Help me write a blog post about budget travel in Lisbon")
        browser.streaming_text(5)
        expect(regenerate).to_be_hidden()
        browser.finished_reply(1)
        # Regenerate sits on the latest reply; the new sample streams in place of the old one.
        expect(page.locator('.msg.assistant[data-turn="1"] #regenerate')).to_be_visible()
        expect(regenerate).to_have_attribute("title", re.compile("2 left"))
        regenerate.click()
        expect(page.locator('.msg.assistant.streaming[data-turn="1"]')).to_have_count(1)
        expect(regenerate).to_be_hidden()
        expect(page.locator("#send")).to_be_disabled()
        regenerated = browser.finished_reply(1)
        expect(regenerate).to_have_attribute("title", re.compile("1 left"))
        expect(page.locator("#turn-count")).to_have_text("1")  # still one turn

        # A side-by-side turn: two replies, side by side, and a pick before anything else.
        browser.send("Give me two different openings")
        pair = page.locator('.msg.pair[data-turn="2"]')
        expect(pair.locator(".candidate .msg-who")).to_have_text(["Reply A", "Reply B"])
        expect(pair.locator(".candidate.streaming")).to_have_count(2)
        expect(pair.locator(".use-reply:visible")).to_have_count(2)
        expect(pair.locator(".candidate.streaming")).to_have_count(0)
        page.fill("#chat-input", "Something else")
        expect(page.locator("#send")).to_be_disabled()
        expect(page.locator("#finish")).to_be_disabled()
        expect(regenerate).to_be_hidden()
        texts = pair.locator(".candidate .msg-text").all_text_contents()

        # A reload while the pick is pending shows the same two replies again.
        page.reload()
        browser.connected()
        expect(pair.locator(".candidate .msg-text")).to_have_text(texts)
        pair.locator('.candidate[data-candidate="1"] .use-reply').click()
        expect(page.locator(".msg.pair")).to_have_count(0)
        picked = browser.finished_reply(2)
        expect(page.locator("#turn-count")).to_have_text("2")
        expect(regenerate).to_be_hidden()  # a picked reply is not regenerated

        # The conversation goes on from the pick.
        browser.send("Thanks, now shorten it")
        browser.streaming_text(5)
        page.click("#stop")
        expect(page.locator('.msg.assistant[data-turn="3"]')).to_have_class(
            re.compile(r"\bstopped\b")
        )
        errors = browser.errors
        browser.close()

    assert errors == []
    assert picked == texts[1]
    first = list(participation.messages.filter(turn=1, role=Role.ASSISTANT).order_by("id"))
    assert [m.is_active for m in first] == [False, True]
    assert first[1].text == regenerated
    assert first[0].alternative_group == first[1].alternative_group is not None
    second = list(participation.messages.filter(turn=2, role=Role.ASSISTANT).order_by("id"))
    assert [(m.text, m.chosen, m.is_active) for m in second] == [
        (texts[0], False, False),
        (texts[1], True, True),
    ]


def test_a_reply_begun_for_a_refused_message_is_taken_back(live_servers, demo_version):
    """The reply begins before the server has stored the message; when the database refuses
    the message (here: a turn stored behind the page's back still waits for its reply), the
    page removes the message and the reply again, keeps the text in the box and says why."""
    import json
    import threading

    from playwright.sync_api import sync_playwright

    participation = make_participation(demo_version)
    session_key = _session_for(participation)

    def unanswered_turn_behind_the_pages_back():
        Message.objects.create(participation=participation, turn=1, role=Role.USER, text="Hi")

    frames: list[str] = []
    with sync_playwright() as pw:
        browser = Browser(pw, live_servers[0].url, session_key)
        page = browser.page
        page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(p)))
        browser.open()
        # Django refuses queries in this thread while Playwright's event loop runs here.
        writer = threading.Thread(target=unanswered_turn_behind_the_pages_back)
        writer.start()
        writer.join()
        browser.send("Write the introduction")
        browser.expect(page.locator("#chat-error")).to_contain_text("retry it before sending")
        browser.expect(page.locator(".msg")).to_have_count(0)
        typed = page.input_value("#chat-input")
        errors = browser.errors
        browser.close()

    assert errors == []
    assert typed == "Write the introduction"
    kinds = [json.loads(f)["type"] for f in frames]
    assert "turn_start" in kinds  # the reply had begun ...
    assert kinds.index("turn_withdrawn") > kinds.index("turn_start")  # ... and was taken back
    stored = Message.objects.filter(participation=participation).values_list("turn", "text")
    assert list(stored) == [(1, "Hi")]
