"""The page passes an automated accessibility check (issue 14's bar): axe-core, vendored in tests/vendor
(version and licence in its README; the app never serves it, no CDN), finds no "serious" or "critical"
violation at desktop and phone sizes, in each state a user meets: the page as it opens, an answer with
its bars, a number with its boxes and cards, a photo read, an error, and both pickers with the model's
details open.

axe is evaluated through the DevTools protocol (page.evaluate), so the page keeps its Content-Security-
Policy: no inline script is added to it. Every violation found, of any impact, is written to
test-artifacts/axe-<size>.json, and a screenshot of each state to test-artifacts/<size>-<state>.png
(docs/screenshots/ and the README show some of them).
"""

import json
from pathlib import Path

import pytest

from test_browser import (ARTIFACTS, _photo_of_digits, _strokes, browser, draw_with_mouse,  # noqa: F401
                          draw_with_touch, server, shot, wait_text)

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
SIZES = {
    "desktop": dict(viewport={"width": 1280, "height": 900}),
    "phone": dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True),
}
BLOCKING = ("serious", "critical")


def _axe(page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({id: v.id,"
        " impact: v.impact, help: v.help, nodes: v.nodes.map(n => [n.target.join(' '), n.failureSummary])})))")


@pytest.mark.parametrize("size", SIZES)
def test_no_serious_accessibility_violations(browser, server, size, tmp_path):
    context = browser.new_context(**SIZES[size])
    page = context.new_page()
    draw = draw_with_touch if size == "phone" else draw_with_mouse
    found = {}

    def check(state):
        found[state] = _axe(page)
        shot(page, f"{size}-{state}.png")
        blocking = [(v["id"], v["impact"], v["help"], v["nodes"]) for v in found[state] if v["impact"] in BLOCKING]
        assert not blocking, f"{size}, {state}: " + json.dumps(blocking, indent=1)

    try:
        page.goto(server + "/")
        page.locator("#model-info").filter(has_text="model:").wait_for()
        check("start")

        draw(page, _strokes("7", (70, 50, 140 / 0.6, 180)))
        wait_text(page, "#label", "7")
        check("single")

        page.click("#mode-multi")
        draw(page, _strokes("407", (60, 70, 520, 170)))
        wait_text(page, "#text", "407")
        check("multi")

        page.click("#mode-photo")
        photo = tmp_path / "digits.jpg"
        photo.write_bytes(_photo_of_digits("2068"))
        page.set_input_files("#file", str(photo))
        wait_text(page, "#status", "4 character(s) found")
        check("photo")

        bad = tmp_path / "notes.txt"
        bad.write_text("not a picture")
        page.set_input_files("#file", str(bad))
        page.locator("#status.error").wait_for()
        check("error")

        page.select_option("#model", "chars")  # both pickers on show, and the model's details open
        page.click("#model-details summary")
        page.locator("#about-classes").wait_for()
        check("details")
    finally:
        context.close()
        (ARTIFACTS / f"axe-{size}.json").write_text(json.dumps(found, indent=1))
    assert len(found) == 6  # every state was checked


def test_tabs_work_from_the_keyboard(browser, server):
    """The mode tabs follow the ARIA tabs pattern: one tab stop, the arrow keys move between tabs."""
    context = browser.new_context(**SIZES["desktop"])
    page = context.new_page()
    try:
        page.goto(server + "/")
        assert page.eval_on_selector_all('[role="tab"]', "ts => ts.map(t => t.tabIndex)") == [0, -1, -1]
        page.focus("#mode-single")
        page.keyboard.press("ArrowRight")
        assert page.get_attribute("#mode-multi", "aria-selected") == "true"
        assert page.evaluate("document.activeElement.id") == "mode-multi"
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")  # wraps round to the last tab
        assert page.get_attribute("#mode-photo", "aria-selected") == "true"
        assert page.locator("#photo-panel").is_visible() and not page.locator("#draw-panel").is_visible()
        assert page.eval_on_selector_all('[role="tab"]', "ts => ts.map(t => t.tabIndex)") == [-1, -1, 0]
    finally:
        context.close()
