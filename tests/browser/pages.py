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


def enter_and_prewrite(
    page, base: str, pid: str, slug: str = "demo", html: dict | None = None
) -> None:
    """Consent and pre-writing, up to a connected writing page; ``html`` (when given) keeps
    each page's content by name: consent, prewriting, writing."""
    from playwright.sync_api import expect

    def keep(name: str) -> None:
        if html is not None:
            html[name] = page.content()

    page.goto(f"{base}/study/{slug}/?PROLIFIC_PID={pid}&STUDY_ID=st1&SESSION_ID=se1")
    expect(page).to_have_url(f"{base}/study/{slug}/consent/")
    keep("consent")
    page.check("#id_agree_0")
    page.check("#id_agree_1")
    page.click("#consent-agree")
    expect(page).to_have_url(f"{base}/study/{slug}/prewriting/")
    keep("prewriting")
    page.locator("input[name=topic]").first.check()
    for i in range(6):
        page.fill(f"#id_answer_{i}", f"Pre-writing answer {i}")
    page.click("#prewriting-submit")
    expect(page).to_have_url(f"{base}/study/{slug}/write/")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    keep("writing")


def submit_final_survey(page, base: str, slug: str = "demo", html: dict | None = None) -> None:
    """The final survey, answered and sent, up to the redirect to Prolific; ``html`` (when
    given) keeps the survey page's content as "final"."""
    from playwright.sync_api import expect

    expect(page).to_have_url(f"{base}/study/{slug}/final/")
    if html is not None:
        html["final"] = page.content()
    page.check('input[name=document_quality][value="8"]')
    page.check('input[name=overall][value="9"]')
    page.fill("#id_strengths", "It asked what I wanted before drafting.")
    page.fill("#id_weaknesses", "Some replies were a little long.")
    page.check('input[name=stop_reason][value="I was satisfied with the document"]')
    page.check('input[name=attention][value="Somewhat disagree"]')
    page.click("#final-submit")
    page.wait_for_url("https://app.prolific.com/**")
