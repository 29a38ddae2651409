"""A Prolific participant's whole journey in headless Chromium against the real ASGI app.

uvicorn serves ``studyapp.asgi:application`` (HTTP and WebSockets) on a loopback port with the
test database and Redis; replies come from the offline backend, streamed over the socket.
Nothing leaves the machine: the final redirect to Prolific is intercepted.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

import pytest

from studyapp.feedback.models import FINAL_TURN, Rating, Scale, SurveyKind, SurveyResponse
from studyapp.participants.models import Outcome, Participation, Status
from studyapp.writing.models import DocumentVersion, Message, Role
from tests.browser.pages import enter_and_prewrite, submit_final_survey
from tests.chromium import chromium_launch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TURNS = 8
RATED = {3: 7, 6: 9}
EDITS = {2: "A first paragraph I wrote myself.", 5: "\nA second paragraph, added later."}
PID = "5f1e2d3c4b5a69788796a5b4"


def _drive(base: str) -> dict:
    """Walk the journey in Chromium; returns what the browser saw (no database access here:
    Playwright's sync API runs an event loop in this thread, where Django refuses queries)."""
    from playwright.sync_api import expect, sync_playwright

    seen: dict = {"frames": [], "errors": [], "html": {}, "completion_url": None}
    with sync_playwright() as pw:
        browser = chromium_launch(pw)
        page = browser.new_context().new_page()
        page.set_default_timeout(20_000)
        expect.set_options(timeout=20_000)
        page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
        page.on("websocket", lambda ws: ws.on(
            "framereceived", lambda payload: seen["frames"].append(json.loads(payload))
        ))

        def complete(route):
            seen["completion_url"] = route.request.url
            route.fulfill(status=200, content_type="text/html", body="<p>Prolific</p>")

        page.route("https://app.prolific.com/**", complete)
        page.route(lambda url: not url.startswith(base) and "prolific.com" not in url,
                   lambda route: route.abort())

        enter_and_prewrite(page, base, PID, html=seen["html"])
        for turn in range(1, TURNS + 1):
            page.fill("#chat-input", f"Message number {turn}: please help with the draft.")
            page.click("#send")
            reply = page.locator(f'.msg.assistant[data-turn="{turn}"]')
            expect(reply).to_have_count(1)
            expect(reply).not_to_have_class(re.compile(r"\bstreaming\b"))
            expect(reply.locator(".msg-text")).not_to_be_empty()
            expect(page.locator("#turn-error")).to_be_hidden()
            expect(page.locator("#stop")).to_be_hidden()
            if turn in RATED:
                expect(page.locator("#rating")).to_be_visible()
                # The reply being rated stays in view above the rating box.
                scrolled_to_end = page.evaluate(
                    "() => { const m = document.getElementById('messages');"
                    " return m.scrollTop + m.clientHeight >= m.scrollHeight - 2; }"
                )
                assert scrolled_to_end, f"turn {turn}: the rated reply is scrolled out of view"
                page.click(f'#rating .rating-value[data-value="{RATED[turn]}"]')
                expect(page.locator("#rating")).to_be_hidden()
            if turn in EDITS:
                page.locator("#document").press("End")
                page.locator("#document").type(EDITS[turn], delay=2)
                page.locator("#chat-input").focus()  # blur saves the document
                expect(page.locator("#doc-status")).to_have_text("Saved")
        expect(page.locator("#turn-count")).to_have_text(str(TURNS))
        expect(page.locator("#finish")).to_be_enabled()
        page.click("#finish")

        submit_final_survey(page, base, html=seen["html"])
        browser.close()
    return seen


def _streamed_turns(frames: list[dict]) -> dict[int, dict]:
    """Per turn: the deltas streamed between turn_start and turn_end, and turn_end's text."""
    turns: dict[int, dict] = {}
    current = None
    for frame in frames:
        if frame.get("type") == "turn_start":
            current = turns.setdefault(frame["turn"], {"deltas": [], "text": None})
        elif frame.get("type") == "delta" and current is not None:
            current["deltas"].append(frame["text"])
        elif frame.get("type") == "turn_end":
            turns.setdefault(frame["turn"], {"deltas": [], "text": None})["text"] = frame["text"]
            current = None
    return turns


def test_prolific_participant_completes_the_study_in_a_browser(server, demo_version):
    seen = _drive(server)

    assert seen["errors"] == []
    query = parse_qs(urlparse(seen["completion_url"]).query)
    assert seen["completion_url"].startswith("https://app.prolific.com/submissions/complete?")
    assert query == {"cc": ["C1A2B3CD"]}
    for name in ("proactive_base", "collabllm"):
        assert all(name not in html for html in seen["html"].values())

    streamed = _streamed_turns(seen["frames"])
    assert sorted(streamed) == list(range(1, TURNS + 1))
    for turn, got in streamed.items():
        assert got["deltas"], f"turn {turn} arrived without streaming"
        assert "".join(got["deltas"]) == got["text"]

    participation = Participation.objects.get(external_id=PID)
    assert participation.status == Status.COMPLETED
    assert participation.outcome == Outcome.COMPLETED
    assert participation.completion_code == "C1A2B3CD"
    assert participation.attention_passed is True
    assert participation.total_seconds > 0
    assert participation.condition.version == demo_version

    messages = Message.objects.filter(participation=participation, is_active=True)
    assert messages.count() == 2 * TURNS
    for turn, got in streamed.items():
        reply = messages.get(turn=turn, role=Role.ASSISTANT)
        assert reply.text == got["text"]
        assert reply.error == ""
        assert messages.get(turn=turn, role=Role.USER).text.startswith(f"Message number {turn}:")

    interaction = dict(
        Rating.objects.filter(participation=participation, scale=Scale.INTERACTION)
        .values_list("turn", "value")
    )
    assert interaction == RATED
    final = dict(
        Rating.objects.filter(participation=participation, turn=FINAL_TURN)
        .values_list("scale", "value")
    )
    assert final == {Scale.DOCUMENT_QUALITY: 8, Scale.OVERALL: 9}

    versions = list(DocumentVersion.objects.filter(participation=participation).order_by("number"))
    assert len(versions) >= 2
    assert EDITS[2] in versions[0].text or EDITS[2] in versions[1].text
    assert versions[-1].text.endswith(EDITS[2] + EDITS[5])

    kinds = set(SurveyResponse.objects.filter(participation=participation)
                .values_list("kind", flat=True))
    assert kinds == {SurveyKind.PREWRITING, SurveyKind.FINAL}
