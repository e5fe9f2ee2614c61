"""Answers on the page belong to their input (issue 14, items 3 and 4): an error or a new input clears
what belonged to the old one; the file chooser takes every format the server reads; the labels of
neighbouring boxes never overlap.

Headless Chromium driven by Playwright, with the fixtures and helpers of test_browser.py. These tests
are about the page, not the models: they read digits with the old segmenter (the "digits" model in the
picker), whose answers to these pictures are known; the line model's reading of them is tested in
test_browser.py and test_browser_read.py.
"""

import re
from pathlib import Path

import pytest

from test_browser import SAMPLES, _photo_of_digits, browser, draw_with_mouse, server, shot, wait_text  # noqa: F401

HINT = "Drop a photo or a scan of some writing, or choose a file."


def _mode(page, mode: str):
    """Switch to `mode` and read with the segmenter and the digit model."""
    page.click(f"#mode-{mode}")
    page.locator("#model-info").filter(has_text="model:").wait_for()  # the models are loaded
    page.select_option("#model", "digits")


@pytest.fixture
def page(browser, server):
    """test_browser's page, where the server's 4xx answers to bad pictures are expected: Chromium logs
    each as a console error ("Failed to load resource"); any other console error or JS error fails."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource: the server responded with a status of 4")
            else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server + "/")
    yield page
    context.close()
    assert not problems, problems


def _read_good_photo(page, photo: Path):
    page.set_input_files("#file", str(photo))
    wait_text(page, "#status", "4 character(s) found")
    wait_text(page, "#text", "2068")
    assert page.locator("#photo-boxes rect").count() == 4
    assert page.locator("#photo").is_visible()


def _nothing_of_the_old_photo(page):
    assert not page.locator("#multi-result").is_visible()  # the old answer and its cards
    assert not page.locator("#single-result").is_visible()
    assert page.locator("#photo-boxes rect").count() == 0  # its boxes
    assert page.locator("#photo-boxes text").count() == 0
    assert not page.locator("#photo").is_visible()  # no old photo, no broken-image icon
    assert page.locator("#chars li").filter(visible=True).count() == 0


@pytest.mark.parametrize("bad_name, bad_bytes, message", [
    ("broken.jpg", b"\xff\xd8\xff\xe0 this is not really a JPEG", re.compile(r"\S")),
    ("notes.txt", b"a shopping list, not a picture\n", re.compile(r"notes\.txt.*(PNG|picture)")),
])
def test_an_error_clears_the_previous_answer(page, tmp_path, bad_name, bad_bytes, message):
    good = tmp_path / "digits.jpg"
    good.write_bytes(_photo_of_digits("2068"))
    bad = tmp_path / bad_name
    bad.write_bytes(bad_bytes)
    _mode(page, "photo")
    _read_good_photo(page, good)
    page.set_input_files("#file", str(bad))
    page.locator("#status.error").wait_for()
    wait_text(page, "#status", message)
    _nothing_of_the_old_photo(page)
    shot(page, f"photo-error-{Path(bad_name).suffix[1:]}.png")
    _read_good_photo(page, good)  # a good picture after the error reads as usual
    assert page.get_attribute("#status", "class") == "status"


def test_leaving_the_photo_tab_and_coming_back_starts_afresh(page, tmp_path):
    good = tmp_path / "digits.jpg"
    good.write_bytes(_photo_of_digits("2068"))
    _mode(page, "photo")
    _read_good_photo(page, good)
    page.click("#mode-single")
    page.click("#mode-photo")
    assert page.input_value("#model") == "digits"  # the choice for numbers and photos is kept
    assert page.inner_text("#status") == HINT
    _nothing_of_the_old_photo(page)
    _read_good_photo(page, good)  # the same file chosen again is read again


def test_the_file_chooser_takes_every_format_the_server_reads(page):
    accept = page.get_attribute("#file", "accept").split(",")
    for kind in ("png", "jpeg", "bmp", "gif", "tiff", "webp"):
        assert f"image/{kind}" in accept, kind
    _mode(page, "photo")
    for name in ("4-small.bmp", "5-paper.gif", "6-paper.tiff", "7-paper.webp", "3-photo.jpg"):
        page.set_input_files("#file", str(SAMPLES / name))
        wait_text(page, "#status", "1 character(s) found")
        wait_text(page, "#text", name[0])
        assert page.get_attribute("#status", "class") == "status", name
        # Chromium cannot show a TIFF: then a note says so, never a broken-image icon.
        if name.endswith(".tiff"):
            assert page.locator("#photo-note").is_visible() and not page.locator("#photo").is_visible()
        else:
            page.locator("#photo").wait_for(state="visible")
            assert page.evaluate("document.getElementById('photo').naturalWidth") > 0
            assert not page.locator("#photo-note").is_visible()


def _overlaps(rects):
    return [(i, j) for i in range(len(rects)) for j in range(i + 1, len(rects))
            if rects[i]["left"] < rects[j]["right"] and rects[j]["left"] < rects[i]["right"]
            and rects[i]["top"] < rects[j]["bottom"] and rects[j]["top"] < rects[i]["bottom"]]


@pytest.mark.parametrize("width", [1100, 390])
def test_labels_of_neighbouring_boxes_do_not_overlap(browser, server, width):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(server + "/")
    _mode(page, "multi")
    # "17" written close together: a narrow "1", and a "7" whose stem runs back left below the 1's foot.
    one = [(200, 70), (200, 200)]
    seven = [(225, 70), (330, 70), (205, 250)]
    draw_with_mouse(page, [one, seven])
    expect(page.locator("#pad-boxes rect")).to_have_count(2, timeout=15000)
    rects = page.eval_on_selector_all(
        "#pad-boxes text",
        "ts => ts.map(t => { const r = t.getBoundingClientRect();"
        " return {label: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom}; })")
    assert len(rects) == 2 and all(r["right"] > r["left"] for r in rects)
    assert not _overlaps(rects), rects
    # Each label still sits by its own box: above or below it, within its width.
    boxes = page.eval_on_selector_all(
        "#pad-boxes rect", "rs => rs.map(r => { const b = r.getBoundingClientRect(); return [b.left, b.right]; })")
    for r, (left, right) in zip(rects, boxes):
        middle = (r["left"] + r["right"]) / 2
        assert left - 1 <= middle <= right + 1, (r, left, right)
    assert all(r["bottom"] - r["top"] >= 14 for r in rects)  # readable on a phone too
    shot(page, f"multi-17-labels-{width}.png")
    context.close()


def test_labels_of_a_crowd_of_narrow_characters_do_not_overlap(page):
    """Ten "1"s closer than a label's width (an answer made up here, so the crowd is exact): the labels
    go above, below and beside their boxes, and none overlaps another."""
    import json

    from playwright.sync_api import expect

    chars = [{"char": "1", "confidence": 0.5 if i % 3 == 0 else 0.9, "uncertain": i % 3 == 0,
              "box": [150 + 14 * i, 80, 158 + 14 * i, 230]} for i in range(10)]
    line = {"text": "1" * 10, "confidence": 0.5, "uncertain": True, "box": [150, 80, 284, 230], "chars": chars,
            "alternatives": [{"text": "1" * 10, "probability": 0.9}, {"text": "1" * 9, "probability": 0.05}]}
    answer = {"model": "line", "method": "line", "size": [640, 320], "text": "1" * 10, "lines": [line]}
    page.route("**/api/read?*", lambda route: route.fulfill(status=200, content_type="application/json",
                                                            body=json.dumps(answer)))
    page.click("#mode-multi")
    draw_with_mouse(page, [[(100, 100), (100, 200)]])
    expect(page.locator("#pad-boxes text")).to_have_count(10, timeout=15000)
    assert page.locator("#chars li.uncertain").count() == 4  # the uncertain ones are marked
    assert page.locator("#alternatives li").count() == 2
    rects = page.eval_on_selector_all(
        "#pad-boxes text", "ts => ts.map(t => { const r = t.getBoundingClientRect();"
                           " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; })")
    assert not _overlaps(rects), rects
    shot(page, "multi-crowded-labels.png")
