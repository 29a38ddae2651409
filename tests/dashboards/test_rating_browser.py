"""A staff rater scores documents blind in headless Chromium: two scores stored under the
rater's name, one per document, and no page shows an arm, an id or a judge's score."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from studyapp.feedback.models import DocumentScore
from studyapp.studies.models import Condition
from tests.chromium import chromium_launch
from tests.scoring.rater_builders import collected_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rated(live_server):
    # Database work happens before Playwright starts (its loop runs in this thread).
    get_user_model().objects.create_user("rater", password="pw-for-tests", is_staff=True)
    collected = collected_make()
    for n, participation in enumerate(collected.documents.values()):
        DocumentScore.objects.create(participation=participation, judge="llama",
                                     rubric_version="document_quality_v1", score=1.5 + n)
    conditions = Condition.objects.filter(version__study__slug=collected.slug)
    secrets = [c.name for c in conditions] + ["proactive", "collabllm", "llama", "1.5"]
    for p in collected.documents.values():
        secrets += [str(p.public_id), p.external_id]
    return collected, secrets


def _blind(html, secrets):
    return [s for s in secrets if re.search(rf"\b{re.escape(s)}\b", html, re.IGNORECASE)]


def _rate(page, score):
    text = page.locator("[data-rate-text]").text_content()
    page.check(f"input[name=score][value='{score}']")
    page.click("[data-rate-save]")
    page.wait_for_selector("[data-messages]")
    return text


def test_a_staff_rater_scores_two_documents_blind(live_server, rated):
    collected, secrets = rated
    from playwright.sync_api import expect, sync_playwright

    url = live_server.url + reverse("dashboards:rate", args=[collected.slug])
    with sync_playwright() as pw:
        browser = chromium_launch(pw)
        page = browser.new_page()
        page.goto(live_server.url + "/admin/login/")
        page.fill("#id_username", "rater")
        page.fill("#id_password", "pw-for-tests")
        page.click("input[type=submit]")
        page.goto(url)
        seen = [page.content()]
        assert page.locator("[data-rate-topic]").text_content() == "Travelling on a tight budget"
        first = _rate(page, 7)
        seen.append(page.content())
        second = _rate(page, 4)
        seen.append(page.content())
        # Back to the first document: the stored score is shown and can be changed.
        page.click("[data-rate-previous]")
        page.click("[data-rate-previous]")
        assert page.locator("[data-rate-text]").text_content() == first
        assert page.locator("input[name=score]:checked").get_attribute("value") == "7"
        seen.append(page.content())
        _rate(page, 8)
        progress = page.locator("[data-rate-progress]").text_content()
        # The study page's scoring panel fills its counts from the progress endpoint.
        page.goto(live_server.url + reverse("dashboards:study", args=[collected.slug]))
        expect(page.locator("[data-scoring-count=total]")).to_have_text("0")
        assert page.locator("[data-scoring-count=judges]").text_content() == "0"
        browser.close()

    assert first != second
    assert "you have rated 2" in progress
    stored = dict(DocumentScore.objects.filter(judge="staff:rater").values_list(
        "participation_id", "score"))
    assert stored == {collected.documents[first].pk: 8.0, collected.documents[second].pk: 4.0}
    assert set(DocumentScore.objects.filter(judge="staff:rater").values_list(
        "rubric_version", flat=True)) == {"document_quality_v1"}
    assert [_blind(html, secrets) for html in seen] == [[], [], [], []]
