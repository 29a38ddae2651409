"""Exclusion, return and erasure driven from the dashboard in headless Chromium."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from studyapp.erasure.models import ErasureRecord
from studyapp.participants.models import Participation, Status, StatusChange
from tests.chromium import chromium_launch
from tests.exports.builders import conversation_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def three(live_server, demo_version):
    # Database work happens before Playwright starts: its sync API runs an event loop in this
    # thread, where Django refuses synchronous queries.
    get_user_model().objects.create_user("staff", password="pw-for-tests", is_staff=True)
    return {
        "exclude": conversation_make(version=demo_version, condition="base"),
        "return": conversation_make(version=demo_version, condition="collabllm",
                                    status=Status.WRITING),
        "erase": conversation_make(version=demo_version, condition="base"),
    }


def _flow_cell(page, arm: str, column: str) -> str:
    return page.locator(f"[data-table='flow'] tr[data-arm='{arm}'] td[{column}]").inner_text()


def test_staff_exclude_return_and_erase_from_the_dashboard(live_server, three):
    from playwright.sync_api import sync_playwright

    base = live_server.url
    pages = {k: base + reverse("dashboards:conversation", args=["demo", b.participation.public_id])
             for k, b in three.items()}
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = chromium_launch(pw)
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/admin/login/")
        page.fill("#id_username", "staff")
        page.fill("#id_password", "pw-for-tests")
        page.click("input[type=submit]")

        page.goto(pages["exclude"])
        form = page.locator("[data-form='exclude']")
        form.locator("select[name=reason]").select_option("duplicate")
        form.locator("input[name=note]").fill("same person as another submission")
        form.get_by_role("button", name="Exclude").click()
        page.locator("[data-messages]", has_text="Participation excluded").wait_for()
        assert page.locator("[data-status]").inner_text().startswith("excluded")
        audit = page.locator("[data-table='status-changes'] tbody tr")
        assert audit.count() == 1
        assert "same person as another submission" in audit.inner_text()
        assert "staff" in audit.inner_text()

        page.goto(pages["return"])
        page.locator("[data-form='return']").get_by_role("button", name="Mark returned").click()
        page.locator("[data-messages]", has_text="marked returned").wait_for()
        assert page.locator("[data-status]").inner_text().startswith("returned")
        assert page.locator("[data-form='return']").count() == 0

        page.goto(pages["erase"])
        erase = page.locator("[data-form='erase']")
        erase.locator("input[name=confirm]").fill("erase")
        erase.get_by_role("button", name="Erase this participant's data").click()
        page.locator("[data-messages]", has_text="data was erased").wait_for()
        # The study page's flow counts the decisions.
        assert _flow_cell(page, "base", "data-flow-excluded") == "1"
        assert _flow_cell(page, "collabllm", "data-flow-returned") == "1"
        assert page.locator("[data-flow='erased']").inner_text() == "1"
        assert page.goto(pages["erase"]).status == 404
        browser.close()
    assert errors == []
    statuses = dict(Participation.objects.values_list("public_id", "status"))
    assert statuses == {three["exclude"].participation.public_id: Status.EXCLUDED,
                        three["return"].participation.public_id: Status.RETURNED}
    assert StatusChange.objects.count() == 2
    assert ErasureRecord.objects.get().via == "dashboard"
