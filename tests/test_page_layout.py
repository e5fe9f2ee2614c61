"""The page fits every screen (issue 14, item 1): no sideways scrolling on a phone, a tablet or a desktop,
whichever bundled model is chosen and in every mode, with short human names in the model picker and the
model's details (what it reads, its classes, network and training data) one click away.

Headless Chromium driven by Playwright, with the fixtures and helpers of test_browser.py.
"""

import pytest

from test_browser import browser, server, shot, start_server  # noqa: F401 (pytest fixtures)

SIZES = {
    "phone": dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True),
    "tablet": dict(viewport={"width": 768, "height": 1024}),
    "desktop": dict(viewport={"width": 1280, "height": 900}),
}
TITLES = {"digits": "Digits", "digits-lite": "Digits (fast)", "chars": "Letters and digits"}
# The line model is offered for numbers, words and photos (its title is the API's; see test_page_pickers).


def _open(browser, url, size):
    context = browser.new_context(**SIZES[size])
    page = context.new_page()
    page.goto(url + "/")
    page.locator("#model-info").filter(has_text="model:").wait_for()  # the models are loaded
    return context, page


def _widths(page) -> dict:
    return page.evaluate("({page: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
                         " window: window.innerWidth})")


@pytest.mark.parametrize("size", SIZES)
def test_no_horizontal_overflow_for_any_model(browser, server, size):
    width = SIZES[size]["viewport"]["width"]
    context, page = _open(browser, server, size)
    try:
        seen = set()
        for mode in ("single", "multi", "photo"):  # each mode offers its own models (line models: not single)
            page.click(f"#mode-{mode}")
            names = page.eval_on_selector_all("#model option", "options => options.map(o => o.value)")
            seen |= set(names)
            for name in names:
                page.select_option("#model", name)
                # A phone widens its layout viewport to the content, so the window's width is checked too.
                w = _widths(page)
                assert w["page"] <= width and w["body"] <= width and w["window"] == width, (size, name, mode, w)
                page.click("#model-details summary")  # the details, open, fit too
                page.locator("#about-classes").wait_for()
                w = _widths(page)
                assert w["page"] <= width and w["window"] == width, (size, name, mode, "details open", w)
                shot(page, f"layout-{size}-{mode}-{name}.png")
                page.click("#model-details summary")
        assert set(TITLES) | {"line"} <= seen, seen  # every bundled model is served by default
    finally:
        context.close()


def test_model_picker_has_short_names_and_the_details_are_one_click_away(browser, server):
    context, page = _open(browser, server, "desktop")
    try:
        models = {m["name"]: m for m in page.evaluate("fetch('/api/models').then(r => r.json())")}
        assert {n: models[n]["title"] for n in TITLES} == TITLES  # the API gives the short names too
        options = page.eval_on_selector_all("#model option", "options => options.map(o => [o.value, o.textContent])")
        assert {v: t for v, t in options if v in TITLES} == TITLES
        page.select_option("#model", "chars")
        assert not page.locator("#about-classes").is_visible()  # closed until asked for
        page.click("#model-details summary")
        chars = models["chars"]
        assert page.inner_text("#about-classes") == "".join(chars["classes"])
        assert page.inner_text("#about-description") == chars["description"]
        assert page.inner_text("#about-arch") == chars["arch"] == "scrawlnet"
        assert page.inner_text("#about-data") == chars["trained_on"] == "emnist-byclass-testhalf"
        assert "Letters and digits" in page.inner_text("#model-info")
        # The footer's line and the class list wrap within the screen instead of running off it.
        for selector in ("#model-info", "#about-classes", "#about-description"):
            box = page.locator(selector).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 1280, selector
    finally:
        context.close()


def test_a_users_own_model_is_named_by_its_file_stem(browser, tmp_path):
    import shutil

    from scrawl.runtime.recognizer import bundled_path

    # A user's file named like a bundled model is still the user's: its stem, not the bundled title.
    shutil.copy(bundled_path("digits"), tmp_path / "digits.pt")
    proc, url = start_server("--model", f"chars,{tmp_path / 'digits.pt'}")
    try:
        context, page = _open(browser, url, "phone")
        options = page.eval_on_selector_all("#model option", "options => options.map(o => o.textContent)")
        assert options == ["Letters and digits", "digits"]
        page.select_option("#model", "digits")
        assert _widths(page)["page"] <= 390
        context.close()
    finally:
        proc.terminate()
        proc.wait(10)
