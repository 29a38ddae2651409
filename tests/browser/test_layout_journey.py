"""The Prolific journey on a 390x844 phone and a 1280x720 laptop, checked by element positions.

A probe in the page checks, on every change of the page, that the document is no taller than
the window and that Send, Stop, the rating box and the reason Send is disabled lie inside the
window whenever they are shown; the test also measures them at the moments they matter.
Screenshots go to the temporary directory for a person to look at; nothing asserts on pixels.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studyapp.participants.models import Participation, Status
from tests.browser.pages import (
    LAPTOP,
    PHONE,
    enter_and_prewrite,
    inside_window,
    submit_final_survey,
)
from tests.chromium import chromium_launch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TURNS = 8
RATED = {3: 6, 6: 8}
DESKTOP = {"width": 1920, "height": 1080}

# Runs in every page before its own scripts; it acts only on the writing page.
PROBE = """
window.__layout = {violations: [], seen: {}};
(function () {
  function inView(el) {
    var r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 &&
      r.bottom <= window.innerHeight + 0.5 && r.right <= window.innerWidth + 0.5;
  }
  function note(text) {
    var v = window.__layout.violations;
    if (v.length < 20 && v[v.length - 1] !== text) { v.push(text); }
  }
  function check() {
    var send = document.getElementById("send");
    if (!send) { return; }
    var height = document.documentElement.scrollHeight;
    if (height > window.innerHeight) { note("page " + height + "px tall"); }
    var chat = document.getElementById("chat-panel");
    if (getComputedStyle(chat).display === "none") { return; }  // the phone shows the document
    ["send", "stop", "rating", "send-hint"].forEach(function (id) {
      var el = document.getElementById(id);
      if (!el || el.hidden) { return; }
      var seen = window.__layout.seen;
      seen[id] = (seen[id] || 0) + 1;
      if (!inView(el)) {
        var r = el.getBoundingClientRect();
        note(id + " outside the window: top " + Math.round(r.top) + ", bottom " +
          Math.round(r.bottom) + ", width " + Math.round(r.width));
      }
    });
  }
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, attributes: true, characterData: true
  });
  window.addEventListener("resize", check);
})();
"""


def _page_fits(page) -> None:
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= page.viewport_size["height"], f"the page grew to {height}px"


def _chat_follows(page) -> None:
    at_end = page.evaluate(
        "() => { const m = document.getElementById('messages');"
        " return m.scrollTop + m.clientHeight >= m.scrollHeight - 2; }"
    )
    assert at_end, "the chat did not follow the new reply"


def _write_a_line(page, phone: bool, text: str) -> None:
    if phone:
        page.click("#tab-doc")
        page.locator("#document").press("End")
        page.locator("#document").type(text, delay=1)
        page.click("#tab-chat")  # leaving the document saves it
    else:
        page.locator("#document").press("End")
        page.locator("#document").type(text, delay=1)
        page.locator("#chat-input").focus()


def _multi_line_message(page, phone: bool, turn: int) -> None:
    """A phone's Enter makes a new line (Send sends); a desktop's Shift+Enter does, and Enter
    sends."""
    box = page.locator("#chat-input")
    box.click()
    box.type(f"Message number {turn}: please help with the draft.")
    if phone:
        box.press("Enter")
        box.type("A second line.")
        assert page.input_value("#chat-input").count("\n") == 1
        inside_window(page, "#send")
        page.click("#send")
    else:
        box.press("Shift+Enter")
        box.type("A second line.")
        assert page.input_value("#chat-input").count("\n") == 1
        box.press("Enter")


def _journey(base: str, viewport: dict, *, phone: bool, pid: str, shots: Path) -> dict:
    from playwright.sync_api import expect, sync_playwright

    seen: dict = {"errors": [], "completion_url": None}
    with sync_playwright() as pw:
        browser = chromium_launch(pw)
        context = browser.new_context(viewport=viewport, has_touch=phone, is_mobile=phone)
        context.add_init_script(PROBE)
        page = context.new_page()
        page.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)
        page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))

        def complete(route):
            seen["completion_url"] = route.request.url
            route.fulfill(status=200, content_type="text/html", body="<p>Prolific</p>")

        page.route("https://app.prolific.com/**", complete)
        page.route(lambda url: not url.startswith(base) and "prolific.com" not in url,
                   lambda route: route.abort())

        enter_and_prewrite(page, base, pid)
        expect(page.locator("#tab-chat")).to_be_visible() if phone else expect(
            page.locator("#tab-chat")
        ).to_be_hidden()
        for turn in range(1, TURNS + 1):
            _multi_line_message(page, phone, turn)
            reply = page.locator(f'.msg.assistant[data-turn="{turn}"]')
            expect(reply).to_have_count(1)
            expect(reply).not_to_have_class(re.compile(r"\bstreaming\b"))
            expect(page.locator("#stop")).to_be_hidden()
            user = page.locator(f'.msg.user[data-turn="{turn}"] .msg-text')
            expect(user).to_have_text(re.compile(r"draft\.\nA second line\.$"))
            _chat_follows(page)
            _page_fits(page)
            if turn in RATED:
                expect(page.locator("#rating")).to_be_visible()
                page.locator("#chat-input").fill("The next message, waiting for the rating.")
                expect(page.locator("#send")).to_be_disabled()
                expect(page.locator("#send-hint")).to_have_text("Rate the last reply first.")
                for selector in ("#rating", "#send", "#send-hint", "#chat-input"):
                    inside_window(page, selector)
                _chat_follows(page)  # the reply being rated stays in view above the box
                page.screenshot(path=shots / f"rating-{turn}.png")
                if not phone:
                    page.set_viewport_size(DESKTOP)
                    for selector in ("#rating", "#send", "#send-hint"):
                        inside_window(page, selector)
                    _page_fits(page)
                    page.set_viewport_size(viewport)
                page.click(f'#rating .rating-value[data-value="{RATED[turn]}"]')
                expect(page.locator("#rating")).to_be_hidden()
                expect(page.locator("#send-hint")).to_be_hidden()
                expect(page.locator("#send")).to_be_enabled()
                page.locator("#chat-input").fill("")
            if turn in (2, 5):
                _write_a_line(page, phone, f" A line I wrote after turn {turn}.")
                expect(page.locator("#doc-status")).to_have_text("Saved")
        seen["messages_scroll"] = page.evaluate(
            "() => { const m = document.getElementById('messages');"
            " return [m.scrollHeight, m.clientHeight]; }"
        )
        page.screenshot(path=shots / "after-turns.png")
        seen["layout"] = page.evaluate("window.__layout")
        expect(page.locator("#turn-count")).to_have_text(str(TURNS))
        inside_window(page, "#finish")
        page.click("#finish")

        submit_final_survey(page, base)
        browser.close()
    return seen


def _check(seen: dict, pid: str) -> None:
    assert seen["errors"] == []
    assert seen["completion_url"].endswith("?cc=C1A2B3CD")
    layout = seen["layout"]
    assert layout["violations"] == []
    # The probe saw each of them while it was needed (Stop: while a reply streamed).
    assert all(layout["seen"].get(name) for name in ("send", "stop", "rating", "send-hint"))
    scroll_height, client_height = seen["messages_scroll"]
    assert scroll_height > client_height  # the chat scrolls inside the window, not the page
    participation = Participation.objects.get(external_id=pid)
    assert participation.status == Status.COMPLETED
    multi_line = participation.messages.filter(role="user", text__contains="\nA second line.")
    assert multi_line.count() == TURNS


def test_the_prolific_journey_fits_a_phone(server, tmp_path):
    pid = "6a1e2d3c4b5a69788796a5b4"
    _check(_journey(server, PHONE, phone=True, pid=pid, shots=tmp_path), pid)


def test_the_prolific_journey_fits_a_laptop_and_a_desktop(server, tmp_path):
    pid = "7b1e2d3c4b5a69788796a5b4"
    _check(_journey(server, LAPTOP, phone=False, pid=pid, shots=tmp_path), pid)
