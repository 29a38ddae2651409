"""The dashboards in headless Chromium: figures drawn, monitor filled, document replay works."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.dashboards.builders import build_known_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def known_live(live_server):
    # Database work happens before Playwright starts: its sync API runs an event loop in this
    # thread, where Django refuses synchronous queries.
    get_user_model().objects.create_user("staff", password="pw-for-tests", is_staff=True)
    return build_known_study()


@pytest.fixture
def page(live_server, known_live):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        yield page
        browser.close()


def _login(page, live_server):
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "pw-for-tests")
    page.click("input[type=submit]")


def test_study_dashboard_draws_every_figure_and_the_monitor(page, live_server, known_live):
    known = known_live
    _login(page, live_server)
    page.goto(live_server.url + reverse("dashboards:study", args=[known.study.slug]))
    page.wait_for_selector("[data-figure-target='engagement'] .main-svg")
    targets = page.locator("[data-figure-target]")
    assert targets.count() == 8  # flow + six paper figures + judge score
    assert page.locator("[data-figure-target] .main-svg").count() >= targets.count()
    # The monitor is fetched by the page's script right after load.
    page.wait_for_selector("[data-monitor-table='writing_now'] tbody tr")
    rows = page.locator("[data-monitor-table='writing_now'] tbody tr")
    assert rows.count() == 1
    assert (
        rows.first.locator("a")
        .get_attribute("href")
        .startswith(f"/dashboard/{known.study.slug}/p/")
    )
    assert page.locator("[data-monitor-table='erroring'] tbody tr").count() == 1
    assert page.js_errors == []
    import os

    if os.environ.get("DASHBOARD_SCREENSHOT"):
        page.set_viewport_size({"width": 1600, "height": 1000})
        page.screenshot(path=os.environ["DASHBOARD_SCREENSHOT"], full_page=True)


def test_conversation_replay_slider_shows_each_version(page, live_server, known_live):
    known = known_live
    built = known.built[0]
    _login(page, live_server)
    url = reverse("dashboards:conversation", args=[known.study.slug, built.participation.public_id])
    page.goto(live_server.url + url)
    text = page.locator("[data-replay-text]")
    assert text.text_content() == built.spec.documents[-1]
    page.locator("[data-replay-slider]").fill("0")
    assert text.text_content() == built.spec.documents[0]
    assert page.locator("[data-replay-number]").text_content() == "1"
    assert page.js_errors == []
