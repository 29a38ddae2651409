"""The participant forms' error box in headless Chromium: its title, and no empty space below."""

import pytest
from django.urls import reverse

from tests.chromium import chromium_launch
from tests.participants.journey import load_reference, prolific_params

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def study(live_server):
    # Before Playwright starts: its sync API runs an event loop in this thread, where Django
    # refuses synchronous queries.
    return load_reference()


@pytest.fixture
def page(live_server, study):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = chromium_launch(pw)
        yield browser.new_page()
        browser.close()


def test_consent_error_box_ends_right_after_its_title(page, live_server):
    params = "&".join(f"{k}={v}" for k, v in prolific_params("PIDBOX").items())
    page.goto(f"{live_server.url}{reverse('participants:entry', args=['demo'])}?{params}")
    page.click("#consent-agree")  # no box ticked
    page.wait_for_load_state("load")  # the stylesheet applied
    box = page.locator("#form-errors")
    assert box.locator("strong").text_content() == "Please check your answers."
    gap = page.evaluate(
        """() => {
          const box = document.getElementById('form-errors');
          const title = box.firstElementChild.getBoundingClientRect();  // the title's paragraph
          const style = getComputedStyle(box);
          const inside = box.getBoundingClientRect().bottom - parseFloat(style.borderBottomWidth)
            - parseFloat(style.paddingBottom);
          return inside - title.bottom;
        }"""
    )
    assert gap <= 1
