"""Steps and measurements the browser tests share."""

from __future__ import annotations

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 720}


def inside_window(page, selector: str) -> dict:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    size = page.viewport_size
    assert box["y"] >= 0, (selector, box)
    assert box["x"] >= 0, (selector, box)
    assert box["y"] + box["height"] <= size["height"] + 0.5, (selector, box, size)
    assert box["x"] + box["width"] <= size["width"] + 0.5, (selector, box, size)
    return box


def enter_and_prewrite(page, base: str, pid: str, slug: str = "demo") -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/study/{slug}/?PROLIFIC_PID={pid}&STUDY_ID=st1&SESSION_ID=se1")
    expect(page).to_have_url(f"{base}/study/{slug}/consent/")
    page.check("#id_agree_0")
    page.check("#id_agree_1")
    page.click("#consent-agree")
    expect(page).to_have_url(f"{base}/study/{slug}/prewriting/")
    page.locator("input[name=topic]").first.check()
    for i in range(6):
        page.fill(f"#id_answer_{i}", f"Pre-writing answer {i}")
    page.click("#prewriting-submit")
    expect(page).to_have_url(f"{base}/study/{slug}/write/")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
