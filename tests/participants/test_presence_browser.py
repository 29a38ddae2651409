"""The pre-writing page reports that it is open, so its consent keeps its quota place.

Headless Chromium on the page (its Content-Security-Policy and CSRF check as served); the
participation's last sign of life is set long ago, and the page's own report brings it back.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from studyapp.participants import views
from studyapp.participants.models import Participation, Status
from tests.chromium import chromium_launch
from tests.participants.journey import load_reference, prolific_params

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(live_server, monkeypatch):
    from playwright.sync_api import sync_playwright

    load_reference()
    monkeypatch.setattr(views, "PRESENCE_INTERVAL_MS", 200)
    # The test reads the database between Playwright calls, whose event loop runs here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    with sync_playwright() as pw:
        browser = chromium_launch(pw)
        yield browser.new_page()
        browser.close()


def test_the_open_pre_writing_page_keeps_reporting(page, live_server):
    params = "&".join(f"{k}={v}" for k, v in prolific_params("PRESENT").items())
    page.goto(f"{live_server.url}{reverse('participants:entry', args=['demo'])}?{params}")
    page.locator("input[type=checkbox]").evaluate_all("boxes => boxes.forEach(b => b.click())")
    page.click("#consent-agree")
    page.wait_for_url("**/prewriting/")
    long_ago = timezone.now() - timedelta(minutes=10)
    Participation.objects.filter(status=Status.CONSENTED).update(last_seen_at=long_ago)

    deadline = time.monotonic() + 10
    while Participation.objects.get().last_seen_at < long_ago + timedelta(minutes=9):
        assert time.monotonic() < deadline, "the page did not report"
        page.wait_for_timeout(100)
