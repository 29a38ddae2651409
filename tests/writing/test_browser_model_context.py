"""In headless Chromium: a study whose assistant sees the document tells the participant so,
and the model is given the text on screen, even when the message is sent within the page's
one-second save debounce (moving to the message box saves the document)."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore

from studyapp.studies.services import study_load
from tests.chromium import chromium_launch
from tests.collab_models.vllm_fake import FakeVLLM, Script
from tests.conftest import REFERENCE_STUDY
from tests.writing.conftest import make_participation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DRAFT = "Budget travel: ten euros a day, and how I kept to it."


def _study_on(url: str):
    text = (
        REFERENCE_STUDY.read_text()
        .replace("model_context: chat\n", "model_context: chat+task+document\n")
        .replace("${VLLM_URL:-http://127.0.0.1:8001}", url)  # the live server's own setting
    )
    return study_load(text=text, slug="sees-document").version


def test_the_model_gets_the_document_typed_just_before_sending(live_servers):
    from playwright.sync_api import expect, sync_playwright

    with FakeVLLM(tps=0).running_in_thread() as fake:
        fake.script(Script(text="A good start."))
        participation = make_participation(_study_on(fake.url), "collabllm")
        session = SessionStore()
        session["participation:sees-document"] = str(participation.public_id)
        session.create()
        base = live_servers[0].url
        with sync_playwright() as pw:
            browser = chromium_launch(pw)
            context = browser.new_context()
            context.add_cookies([{"name": "sessionid", "value": session.session_key, "url": base}])
            page = context.new_page()
            page.goto(f"{base}/study/sees-document/write/")
            expect(page.locator("#status")).to_have_attribute("data-state", "connected")
            expect(page.locator("#model-sees")).to_contain_text("can see your document editor")
            page.fill("#document", DRAFT)  # the save is debounced by a second
            page.fill("#chat-input", "Is this a good opening?")
            page.click("#send")
            reply = page.locator('.msg.assistant[data-turn="1"] .msg-text')
            expect(reply).to_have_text("A good start.")
            browser.close()
        (request,) = fake.chat_requests()
    context_message = request.body["messages"][1]
    assert context_message["role"] == "system"
    assert f"<document>\n{DRAFT}\n</document>" in context_message["content"]
