"""Time limits in the browser: the idle warning and its button, then a timeout that explains
itself on Prolific's outcome page and shows back the message that was never sent."""

from __future__ import annotations

import pytest
import yaml

from studyapp.participants.models import EventKind, Participation, ParticipationEvent, Status
from tests.browser.pages import PHONE, enter_and_prewrite, inside_window
from tests.chromium import chromium_launch
from tests.conftest import REFERENCE_STUDY

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PID = "8c1e2d3c4b5a69788796a5b4"
UNSENT = "A message I was still writing\nwhen the session ended."
# Idle for 6 s ends the session; the warning shows 4.5 s before that.
LIMITS = {"idle_minutes": 0.1, "idle_warning_minutes": 0.075}


@pytest.fixture
def quick_study(server):
    from studyapp.studies.services import study_load

    raw = yaml.safe_load(REFERENCE_STUDY.read_text())
    raw["limits"] = {**raw["limits"], **LIMITS}
    study_load(text=yaml.safe_dump(raw), slug="quick", offline=True)
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
