"""The model path as a participant meets it, in headless Chromium against the loopback vLLM.

A model that cannot answer (unknown model, a message too long for the window, a 5xx that never
clears) ends on the technical-problem page with its code; a conversation longer than the window
goes on; a queued first token arrives on its one request while the page says the assistant is
working; a stall mid-reply is reported within the limit; the proactive arm's stored time to
first token is what the participant waited for.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from studyapp.dashboards.selectors import study_flow
from studyapp.participants.models import Status
from studyapp.studies.models import Condition
from studyapp.writing.models import Message, Role
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.writing.conftest import REMOTE_MODEL, participation_on
from tests.writing.test_browser_page import Browser, _session_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _condition(version, url: str, name: str, **overrides: Any) -> Condition:
    config = {
        "name": name,
        "backend": "openai",
        "endpoints": [url],
        "model": REMOTE_MODEL,
        "response_format": "text",
        "sampling": {"temperature": 0.8, "top_p": 1.0, "max_tokens": 64},
        "timeouts": {"connect": 2, "first_token": 5, "between_tokens": 5, "total": 30},
        "retries": 0,
        **overrides,
    }
    return Condition.objects.create(version=version, name=name, backend="openai", config=config)


def _ends_on_the_technical_page(browser: Browser, retries: int = 0) -> None:
    page = browser.page
    browser.open()
    browser.send("Help me write a blog post about budget travel")
    for _ in range(retries):
        browser.expect(page.locator("#retry")).to_be_visible()
        page.click("#retry")
    browser.expect(page).to_have_url(re.compile(r"/study/demo/done/$"))
    browser.expect(page.locator("#technical-problem")).to_be_visible()
    browser.expect(page.locator("#completion-code")).to_have_text("TECHPROB")


def test_permanent_errors_end_on_the_technical_problem_page(live_servers, demo_version):
    from playwright.sync_api import sync_playwright

    with FakeVLLM(tps=0).running_in_thread() as fake:
        unknown = participation_on(
            demo_version, _condition(demo_version, fake.url, "unknown", model="no-such-model")
        )
        too_long = participation_on(demo_version, _condition(demo_version, fake.url, "window"))
        failing = participation_on(demo_version, _condition(demo_version, fake.url, "failing"))
        # Database work before Playwright: its sync API runs an event loop in this thread.
        keys = {p.pk: _session_for(p) for p in (unknown, too_long, failing)}
        with sync_playwright() as pw:
            for participation, setup, retries in (
                (unknown, lambda: None, 0),
                # A first message longer than the window: nothing older to drop.
                (too_long, lambda: setattr(fake, "max_model_len", 20), 0),
                # writing.max_failed_replies is 3: two Retries, then the end page.
                (failing, lambda: fake.script(*[Script(status=503)] * 3), 2),
            ):
                fake.max_model_len = None
                setup()
                browser = Browser(pw, live_servers[0].url, keys[participation.pk])
                _ends_on_the_technical_page(browser, retries)
                assert browser.errors == []
                browser.close()

    flow = study_flow(study=demo_version.study, arms=[])
    by_arm = {arm.name: arm for arm in flow.arms}
    for name in ("unknown", "window", "failing"):
        assert by_arm[name].technical_problem == 1
    for participation in (unknown, too_long, failing):
        participation.refresh_from_db()
        assert participation.status == Status.TECHNICAL_PROBLEM
        assert participation.completion_code == "TECHPROB"


def _long_history(participation, turns: int) -> None:
    words = " ".join(["draft"] * 80)
    for turn in range(1, turns + 1):
        Message.objects.create(
            participation=participation, turn=turn, role=Role.USER, text=f"u{turn} {words}"
        )
        Message.objects.create(
            participation=participation,
            turn=turn,
            role=Role.ASSISTANT,
            text=f"a{turn} {words}",
            finish_reason="stop",
        )


def test_long_chat_goes_on_queued_reply_arrives_and_a_stall_is_reported(live_servers, demo_version):
    from playwright.sync_api import sync_playwright

    with FakeVLLM(tps=0).running_in_thread() as fake:
        long_chat = participation_on(demo_version, _condition(demo_version, fake.url, "long"))
        _long_history(long_chat, 2)
        queued = participation_on(demo_version, _condition(demo_version, fake.url, "queued"))
        stalled = participation_on(
            demo_version,
            _condition(
                demo_version,
                fake.url,
                "stalled",
                timeouts={"connect": 2, "first_token": 5, "between_tokens": 1, "total": 30},
            ),
        )
        keys = {p.pk: _session_for(p) for p in (long_chat, queued, stalled)}
        with sync_playwright() as pw:
            # Longer than the window (64 tokens of reply + 4 exchanges of 80 words > 300).
            fake.max_model_len = 300
            browser = Browser(pw, live_servers[0].url, keys[long_chat.pk])
            browser.open()
            browser.send("Now make the ending shorter please")
            assert browser.finished_reply(3)
            browser.close()
            fake.max_model_len = None

            # Queued for 2.5 s (first_token is 5 s here, 120 s by default): one request, and
            # the page says the assistant is working the whole time.
            fake.script(Script(text="Here you are at last", queue_delay=2.5))
            browser = Browser(pw, live_servers[0].url, keys[queued.pk])
            browser.open()
            requests_before = len(fake.chat_requests())
            browser.send("Help me write a blog post about budget travel")
            working = browser.page.locator("#working")
            browser.expect(working).to_be_visible()
            browser.page.wait_for_timeout(2000)
            browser.expect(working).to_be_visible()  # still working, still one request
            assert browser.finished_reply(1) == "Here you are at last"
            browser.expect(working).to_be_hidden()
            assert len(fake.chat_requests()) - requests_before == 1
            browser.close()

            # A stall mid-reply: reported after between_tokens (1 s), Retry offered.
            fake.script(Script(text="one two three four five six", stall_after=2))
            browser = Browser(pw, live_servers[0].url, keys[stalled.pk])
            browser.open()
            browser.send("Help me write a blog post about budget travel")
            browser.streaming_text(3)
            started = browser.page.evaluate("performance.now()")
            browser.expect(browser.page.locator("#retry")).to_be_visible(timeout=15000)
            reported_after = browser.page.evaluate("performance.now()") - started
            browser.close()

    # The study's 1 s limit, not the default 15 s: a margin for a loaded machine, well below.
    assert reported_after < 10_000
    reply = Message.objects.get(participation=long_chat, turn=3, role=Role.ASSISTANT)
    assert reply.dropped_turns == 1
    assert reply.endpoint == fake.url
    stalled_reply = Message.objects.get(participation=stalled, turn=1, role=Role.ASSISTANT)
    assert "silent" in stalled_reply.error


# Records when the first character of the latest reply appears (before the click).
_WATCH = """() => {
  window.firstChar = null;
  const list = document.getElementById('messages');
  new MutationObserver(() => {
    const text = list.querySelector('.msg.assistant:last-child .msg-text');
    if (window.firstChar === null && text && text.textContent.length > 0) {
      window.firstChar = performance.now();
    }
  }).observe(list, {childList: true, subtree: true, characterData: true});
}"""


def test_proactive_ttft_is_what_the_participant_waited_for(live_servers, demo_version):
    from playwright.sync_api import sync_playwright

    reply = {"current_problem": "A post about travel.", "thought": "x" * 60, "response": "Hi!"}
    raw = json.dumps(reply)
    with FakeVLLM(tps=0).running_in_thread() as fake:
        # Hidden fields for about 1.5 s (30 chunks at 20 a second), then the response.
        cut = raw.index('"response"')
        chunks = [raw[i : min(i + 3, cut)] for i in range(0, cut, 3)]
        fake.script(Script(tokens=[*chunks, raw[cut:]], tps=20))
        participation = participation_on(
            demo_version,
            _condition(
                demo_version,
                fake.url,
                "proactive",
                prompt="proactive",
                response_format="json_response",
            ),
        )
        key = _session_for(participation)
        with sync_playwright() as pw:
            browser = Browser(pw, live_servers[0].url, key)
            browser.open()
            browser.page.fill("#chat-input", "Help me write a blog post about budget travel")
            browser.page.evaluate(_WATCH)
            sent_at = browser.page.evaluate(
                "() => { const t = performance.now(); document.getElementById('send').click();"
                " return t; }"
            )
            assert browser.finished_reply(1) == "Hi!"
            waited_ms = browser.page.evaluate("window.firstChar") - sent_at
            browser.close()

    stored = Message.objects.get(participation=participation, turn=1, role=Role.ASSISTANT)
    assert stored.model_ttft_ms is not None
    assert stored.model_ttft_ms < 300  # the hidden fields began at once
    assert stored.ttft_ms is not None
    assert stored.ttft_ms > 1000
    assert abs(stored.ttft_ms - waited_ms) < 100
