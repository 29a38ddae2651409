"""Time limits in the browser: the idle and session warnings and their button, then a timeout
that explains itself on Prolific's outcome page and shows back the message never sent."""

from __future__ import annotations

import re

import pytest
import yaml

from studyapp.participants.models import EventKind, Participation, ParticipationEvent, Status
from tests.browser.pages import LAPTOP, PHONE, enter_and_prewrite, inside_window
from tests.chromium import chromium_launch
from tests.conftest import REFERENCE_STUDY

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PID = "8c1e2d3c4b5a69788796a5b4"
UNSENT = "A message I was still writing\nwhen the session ended."
# Idle for 6 s ends the session; the warning shows 4.5 s before that.
LIMITS = {"idle_minutes": 0.1, "idle_warning_minutes": 0.075}


# The session ends 12 s after entry; its warning shows 9 s before that.
SESSION_LIMITS = {"session_minutes": 0.2, "session_warning_minutes": 0.15}


def _load_quick(limits: dict) -> None:
    from studyapp.studies.services import study_load

    raw = yaml.safe_load(REFERENCE_STUDY.read_text())
    raw["limits"] = {**raw["limits"], **limits}
    study_load(text=yaml.safe_dump(raw), slug="quick", offline=True)


@pytest.fixture
def quick_study(server):
    _load_quick(LIMITS)
    return server


@pytest.fixture
def short_study(server):
    _load_quick(SESSION_LIMITS)
    return server


def _drive(base: str) -> dict:
    from playwright.sync_api import expect, sync_playwright

    seen: dict = {"errors": []}
    with sync_playwright() as pw:
        browser = chromium_launch(pw)
        context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)
        page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
        page.route(lambda url: not url.startswith(base), lambda route: route.abort())

        enter_and_prewrite(page, base, PID, slug="quick")
        warning = page.locator("#time-warning")
        expect(warning).to_be_visible()
        expect(page.locator("#time-warning-text")).to_contain_text("not used this page")
        inside_window(page, "#time-warning")
        inside_window(page, "#stay")
        page.click("#stay")
        expect(warning).to_be_hidden()

        page.fill("#chat-input", UNSENT)
        expect(warning).to_be_visible()  # nothing more done: it comes back
        page.wait_for_url(f"{base}/study/quick/done/")
        seen["explained"] = page.locator("#outcome-explained").inner_text()
        expect(page.locator("#kept-text")).to_be_visible()
        seen["kept"] = page.input_value("#kept-message")
        seen["redirect_note_hidden"] = page.locator("#redirect-note").is_hidden()
        seen["link"] = page.get_attribute("#prolific-link", "href")
        browser.close()
    return seen


def test_an_idle_participant_is_warned_then_timed_out_with_nothing_lost(quick_study):
    seen = _drive(quick_study)

    assert seen["errors"] == []
    assert "was not used for 0.1 minutes" in " ".join(seen["explained"].split())
    assert seen["kept"] == UNSENT
    assert seen["redirect_note_hidden"]  # it waits for the participant to copy the text
    assert seen["link"] == "https://app.prolific.com/submissions/complete?cc=TIMEDOUT"
    participation = Participation.objects.get(external_id=PID)
    assert participation.status == Status.TIMED_OUT
    assert not participation.messages.exists()
    kinds = ParticipationEvent.objects.filter(participation=participation)
    assert kinds.filter(kind=EventKind.STAY).count() == 1


def _drive_session(base: str) -> dict:
    from playwright.sync_api import expect, sync_playwright

    seen: dict = {"errors": []}
    with sync_playwright() as pw:
        browser = chromium_launch(pw)
        page = browser.new_context(viewport=LAPTOP).new_page()
        page.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)
        page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
        page.route(lambda url: not url.startswith(base), lambda route: route.abort())

        enter_and_prewrite(page, base, PID, slug="quick")
        expect(page.locator("#time-warning-text")).to_contain_text("time limit for this study")
        expect(page.locator("#stay")).to_have_text("Keep writing")
        expect(page.locator("#time-left")).to_contain_text(re.compile(r"time left 0:\d\d"))
        inside_window(page, "#stay")
        page.click("#stay")
        expect(page.locator("#time-warning")).to_be_hidden()
        expect(page.locator("#time-left")).to_be_visible()  # the countdown stays
        page.wait_for_url(f"{base}/study/quick/done/")
        seen["explained"] = page.locator("#outcome-explained").inner_text()
        seen["kept_hidden"] = page.locator("#kept-text").is_hidden()  # nothing was typed
        seen["redirect_note"] = page.locator("#redirect-note").is_visible()
        browser.close()
    return seen


def test_the_session_limit_is_announced_then_explained(short_study):
    seen = _drive_session(short_study)

    assert seen["errors"] == []
    assert "time limit of 0.2 minutes" in " ".join(seen["explained"].split())
    assert seen["kept_hidden"]
    assert seen["redirect_note"]  # nothing to copy: it goes on to Prolific by itself
    assert Participation.objects.get(external_id=PID).status == Status.TIMED_OUT
