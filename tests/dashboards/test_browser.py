"""The dashboards in headless Chromium: figures drawn, monitor filled, document replay works."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.chromium import chromium_launch
from tests.dashboards.builders import build_known_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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
        browser = chromium_launch(pw)
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
    # flow, six paper figures, chat and active time, judge score
    assert targets.count() == 10
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


def _overflowing(page) -> list[str]:
    """Elements whose right edge lies beyond the page's main box (cut off or page-widening)."""
    return page.evaluate(
        """() => {
          const main = document.querySelector('main').getBoundingClientRect();
          const out = [];
          for (const el of document.querySelectorAll('main *')) {
            let clipped = false;
            for (let p = el.parentElement; p && p.tagName !== 'MAIN'; p = p.parentElement) {
              if (getComputedStyle(p).overflowX !== 'visible') { clipped = true; break; }
            }
            if (!clipped && el.getBoundingClientRect().right > main.right + 1) {
              out.push(el.tagName + (el.dataset.table ? '[' + el.dataset.table + ']' : ''));
            }
          }
          return out;
        }"""
    )


def test_study_dashboard_fits_a_1440px_window_wide_tables_scroll_in_place(
    page, live_server, known_live
):
    page.set_viewport_size({"width": 1440, "height": 900})
    _login(page, live_server)
    page.goto(live_server.url + reverse("dashboards:study", args=[known_live.study.slug]))
    page.wait_for_selector("[data-figure-target='engagement'] .main-svg")
    page.wait_for_selector("[data-monitor-table='writing_now'] tbody tr")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    assert _overflowing(page) == []
    # At 1440 px every table fits without scrolling, the flow table's last column included.
    scrolling = page.evaluate(
        """() => [...document.querySelectorAll('.dash-scroll')]
                 .filter((e) => e.scrollWidth > e.clientWidth).length"""
    )
    assert scrolling == 0
    assert page.locator("[data-table='flow'] th", has_text="Failed attention").is_visible()
    # On a narrow window the tables scroll inside their containers; the page does not widen.
    page.set_viewport_size({"width": 700, "height": 900})
    # plotly redraws its figures for the new width shortly after the resize event.
    page.wait_for_function("() => document.documentElement.scrollWidth <= 700", timeout=5000)
    assert _overflowing(page) == []
    assert page.js_errors == []


def test_staff_start_an_export_from_the_study_dashboard_and_download_it(
    page, live_server, known_live, settings, tmp_path
):
    settings.EXPORT_DIR = tmp_path / "exports"
    _login(page, live_server)
    page.goto(live_server.url + reverse("dashboards:study", args=[known_live.study.slug]))
    panel = page.locator("[data-export-panel]")
    panel.get_by_text("No exports yet.").wait_for()
    panel.locator("[data-export-kind]").select_option("analysis")
    panel.locator("[data-export-format]").select_option("csv")
    panel.get_by_role("button", name="Start export").click()
    job = panel.locator("[data-export-jobs] tbody tr[data-status='succeeded']")
    job.wait_for()
    assert job.locator("progress").get_attribute("value") == "1"
    with page.expect_download() as download:
        job.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename.endswith(".zip")
    assert page.js_errors == []
