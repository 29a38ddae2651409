"""Two tabs of one participant in headless Chromium stay in step: a rating given in one closes
the other's rating box, a document saved in one shows in the other, and a save that replaced
the other tab's newer text says so and lets the participant pick."""

from __future__ import annotations

import time

import pytest

from studyapp.writing.models import DocumentVersion
from tests.writing.conftest import make_participation
from tests.writing.test_browser_page import Browser, _session_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ONE, TWO = "The draft as tab one has it.", "The draft as tab two has it."


def _open_second(browser: Browser):
    page = browser.context.new_page()
    page.on("pageerror", lambda exc: browser.errors.append(str(exc)))
    page.goto(f"{browser.base}/study/demo/write/")
    browser.expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page


def _first_conflict(pages, within_s: float = 20):
    """The page whose save came second (it shows the conflict notice)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        shown = [p for p in pages if p.locator("#doc-conflict").is_visible()]
        if shown:
            return shown
        pages[0].wait_for_timeout(100)
    raise AssertionError("no tab showed the conflict")


def test_a_rating_given_in_one_tab_closes_the_other_tabs_rating_box(live_servers, demo_version):
    from playwright.sync_api import sync_playwright

    demo_version.spec["writing"]["rating_every"] = 1
    demo_version.save(update_fields=["spec"])
    participation = make_participation(demo_version)
    session_key = _session_for(participation)
    with sync_playwright() as pw:
        browser = Browser(pw, live_servers[0].url, session_key)
        expect, one = browser.expect, browser.page
        browser.open()
        two = _open_second(browser)

        browser.send("Help me plan a short post about Lisbon")
        browser.finished_reply(1)
        for page in (one, two):
            expect(page.locator("#rating")).to_be_visible()
            expect(page.locator("#turn-count")).to_have_text("1")
        two.click('#rating .rating-value[data-value="7"]')
        expect(two.locator("#rating")).to_be_hidden()
        expect(one.locator("#rating")).to_be_hidden()  # given in the other tab
        one.fill("#chat-input", "ok")
        expect(one.locator("#send")).to_be_enabled()
        one.click("#send")
        browser.finished_reply(2)
        for page in (one, two):  # a one-word message buys no turn, and the page says why
            expect(page.locator("#turn-count")).to_have_text("1")
            expect(page.locator("#finish-hint")).to_contain_text("at least 2 words")
            expect(page.locator("#finish-hint")).to_contain_text("some text in your document")

        errors = browser.errors
        browser.close()
    assert errors == []


def test_two_tabs_follow_a_save_and_resolve_a_conflict(live_servers, demo_version):
    from playwright.sync_api import sync_playwright

    participation = make_participation(demo_version)
    session_key = _session_for(participation)
    with sync_playwright() as pw:
        browser = Browser(pw, live_servers[0].url, session_key)
        expect, one = browser.expect, browser.page
        browser.open()
        two = _open_second(browser)

        # A save in one tab shows in the other, which has no edits of its own.
        one.fill("#document", "A first line.")
        one.locator("#chat-input").focus()  # blur saves
        expect(one.locator("#doc-status")).to_have_text("Saved")
        expect(two.locator("#document")).to_have_value("A first line.")
        expect(two.locator("#doc-status")).to_have_text("Updated from another tab")

        # Both edit the same version: whichever saves second is told, and picks.
        two.fill("#document", TWO)
        one.fill("#document", ONE)
        one.locator("#chat-input").focus()
        two.locator("#chat-input").focus()
        (second,) = _first_conflict([one, two])
        first, mine, theirs = (two, ONE, TWO) if second is one else (one, TWO, ONE)
        expect(second.locator("#doc-status")).to_have_text("Changed in another tab")
        expect(second.locator("#document")).to_have_value(mine)
        second.click("#doc-use-other")
        expect(second.locator("#doc-conflict")).to_be_hidden()
        expect(second.locator("#document")).to_have_value(theirs)
        expect(second.locator("#doc-status")).to_have_text("Saved")
        expect(first.locator("#document")).to_have_value(theirs)
        errors = browser.errors
        browser.close()

    assert errors == []
    texts = list(
        DocumentVersion.objects.filter(participation=participation)
        .order_by("number")
        .values_list("text", flat=True)
    )
    assert texts[-1] == theirs
    assert mine in texts  # the text the participant set aside is kept as a version
