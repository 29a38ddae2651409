"""The writing page resends a message its socket dropped before the server acknowledged it
(static/js/writing.js, ``pendingSend``): after the reconnect's ``state`` it sends the message
again with the same ``client_msg_id``, so the participant's turn is stored once and its reply
arrives once.

Playwright stands between the page and the live server (``route_web_socket``) and cuts the
page's first socket at its ``send``: before the frame reaches the server (it is lost with the
socket), or just after (stored, but the ack never comes back). In the third case the state the
page reconnects to does not list the message yet, as when its store on the old socket is still
under way (a database outage waited out): the page sends it again, and the server, which has
it, must not store or answer it twice.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from studyapp.writing.models import Message, Role
from tests.writing.conftest import make_participation
from tests.writing.test_browser_page import Browser, _session_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class CutFirstSend:
    """Forwards every frame both ways, except that the page's first ``send`` closes its
    socket (after passing the frame on, when ``reaches_server``); records every ``send``."""

    def __init__(self, *, reaches_server: bool, state_unseen: bool = False) -> None:
        self.reaches_server = reaches_server
        self.state_unseen = state_unseen
        self.sends: list[str] = []  # the client_msg_id of each send the page made
        self.sockets = 0

    def __call__(self, ws: Any) -> None:
        server = ws.connect_to_server()
        first_socket = self.sockets == 0
        self.sockets += 1

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message) if isinstance(message, str) else {}
            if frame.get("type") == "send":
                self.sends.append(frame["client_msg_id"])
                if first_socket and len(self.sends) == 1:
                    if self.reaches_server:
                        server.send(message)
                    ws.close(code=4000, reason="cut")
                    server.close()
                    return
            server.send(message)

        def from_server(message: str | bytes) -> None:
            if self.state_unseen and not first_socket and isinstance(message, str):
                frame = json.loads(message)
                if frame.get("type") == "state" and self.sends:
                    frame["messages"] = [
                        m for m in frame["messages"] if m.get("client_msg_id") != self.sends[0]
                    ]
                    message = json.dumps(frame)
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)


@pytest.mark.parametrize(
    ("reaches_server", "state_unseen"),
    [(False, False), (True, False), (True, True)],
    ids=["lost", "unacknowledged", "stored-unseen"],
)
def test_a_send_cut_before_its_ack_is_stored_once_and_answered_once(
    live_servers, demo_version, reaches_server, state_unseen
):
    from playwright.sync_api import sync_playwright

    participation = make_participation(demo_version)
    session_key = _session_for(participation)
    cut = CutFirstSend(reaches_server=reaches_server, state_unseen=state_unseen)
    with sync_playwright() as pw:
        browser = Browser(pw, live_servers[0].url, session_key)
        page = browser.page
        page.route_web_socket(re.compile(r"/ws/study/"), cut)
        browser.open()
        browser.send("Help me write a blog post about budget travel in Lisbon")
        reply = browser.finished_reply(1)
        browser.expect(page.locator(".msg.user")).to_have_count(1)
        browser.expect(page.locator(".msg.assistant")).to_have_count(1)
        browser.expect(page.locator("#turn-count")).to_have_text("1")
        errors = browser.errors
        browser.close()

    assert errors == []
    assert cut.sockets >= 2  # the page reconnected
    if state_unseen or not reaches_server:  # the page must send it again, as it was
        assert len(cut.sends) == 2
    assert len(set(cut.sends)) == 1, cut.sends  # never under a new id
    users = Message.objects.filter(participation=participation, role=Role.USER)
    assert [(m.turn, m.client_msg_id) for m in users] == [(1, cut.sends[0])]
    replies = Message.objects.filter(participation=participation, role=Role.ASSISTANT)
    assert [(m.turn, m.text) for m in replies] == [(1, reply)]


class RefuseFirstSend:
    """Forwards every frame both ways, except the page's first ``send``: answered in the
    server's stead with a refusal for now (``unavailable`` with ``retry_after``), as when Redis
    stayed away past the send's wait; records every ``send``."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.sends: list[str] = []

    def __call__(self, ws: Any) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message) if isinstance(message, str) else {}
            if frame.get("type") == "send":
                self.sends.append(frame["client_msg_id"])
                if len(self.sends) == 1:
                    refusal = {"type": "error", "code": self.code, "message": "Not now.",
                               "of": "send", "retry_after": 1}  # fmt: skip
                    ws.send(json.dumps(refusal))
                    return
            server.send(message)

        ws.on_message(from_page)
        server.on_message(ws.send)


@pytest.mark.parametrize("code", ["unavailable", "busy"])
def test_a_send_refused_with_retry_after_is_sent_again_by_the_page(
    live_servers, demo_version, code
):
    from playwright.sync_api import sync_playwright

    participation = make_participation(demo_version)
    session_key = _session_for(participation)
    refuse = RefuseFirstSend(code)
    with sync_playwright() as pw:
        browser = Browser(pw, live_servers[0].url, session_key)
        page = browser.page
        page.route_web_socket(re.compile(r"/ws/study/"), refuse)
        browser.open()
        browser.send("Help me write a blog post about budget travel in Lisbon")
        reply = browser.finished_reply(1)
        browser.expect(page.locator(".msg.user")).to_have_count(1)
        shown = page.locator("#chat-error").text_content()
        errors = browser.errors
        browser.close()

    assert errors == []
    assert not shown  # the refusal was never the participant's to see
    assert len(refuse.sends) == 2  # once refused, once again by the page itself
    assert len(set(refuse.sends)) == 1, refuse.sends  # under its own id
    users = Message.objects.filter(participation=participation, role=Role.USER)
    assert [(m.turn, m.client_msg_id) for m in users] == [(1, refuse.sends[0])]
    replies = Message.objects.filter(participation=participation, role=Role.ASSISTANT)
    assert [(m.turn, m.text) for m in replies] == [(1, reply)]


class CutFirstRate:
    """Forwards every frame both ways, except that the page's first ``rate`` closes its socket
    before the frame reaches the server (lost with the socket)."""

    def __init__(self) -> None:
        self.rates = 0
        self.sockets = 0

    def __call__(self, ws: Any) -> None:
        server = ws.connect_to_server()
        self.sockets += 1

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message) if isinstance(message, str) else {}
            if frame.get("type") == "rate":
                self.rates += 1
                if self.rates == 1:
                    ws.close(code=4000, reason="cut")
                    server.close()
                    return
            server.send(message)

        ws.on_message(from_page)
        server.on_message(ws.send)


def test_a_rating_cut_before_its_answer_is_offered_again_after_the_reconnect(
    live_servers, demo_version
):
    from playwright.sync_api import sync_playwright

    demo_version.spec["writing"]["rating_every"] = 1
    demo_version.save(update_fields=["spec"])
    participation = make_participation(demo_version)
    session_key = _session_for(participation)
    cut = CutFirstRate()
    with sync_playwright() as pw:
        browser = Browser(pw, live_servers[0].url, session_key)
        page, expect = browser.page, browser.expect
        page.route_web_socket(re.compile(r"/ws/study/"), cut)
        browser.open()
        browser.send("Help me write a blog post about budget travel in Lisbon")
        browser.finished_reply(1)
        expect(page.locator("#rating")).to_be_visible()
        page.click('#rating .rating-value[data-value="7"]')
        # The socket closed before the rating reached the server: after the reconnect the
        # state says it is still due, and the buttons are offered again, not left "sending".
        expect(page.locator('#rating .rating-value[data-value="8"]')).to_be_enabled()
        page.click('#rating .rating-value[data-value="8"]')
        expect(page.locator("#rating")).to_be_hidden()
        errors = browser.errors
        browser.close()

    assert errors == []
    assert cut.sockets >= 2
    assert cut.rates == 2
    assert list(participation.ratings.values_list("turn", "value")) == [(1, 8)]
