"""The web page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

A `scrawl serve` subprocess serves the page; the tests draw with real pointer input (mouse, and touch on a
phone-sized screen), use the multi-character mode and upload a photo, and save a screenshot of each state
in test-artifacts/ (ignored by git). Without Chromium or Playwright the tests skip, except in CI (CI set),
where they fail: `make test` installs both.
"""

import io
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("SCRAWL_CHROMIUM", "/usr/bin/chromium")
SAMPLES = REPO / "src" / "scrawl" / "assets" / "samples"

# Digits as pen strokes in a unit box (x right, y down), drawn like a person would.
SHAPES = {
    "0": [[(0.5 + 0.42 * math.sin(t / 24 * 2 * math.pi), 0.5 - 0.5 * math.cos(t / 24 * 2 * math.pi)) for t in range(25)]],
    "4": [[(0.55, 0.0), (0.05, 0.65), (0.95, 0.65)], [(0.7, 0.3), (0.7, 1.0)]],  # two strokes
    "7": [[(0.05, 0.05), (0.95, 0.05), (0.4, 1.0)]],
}


def _missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} (make test installs it)")
    pytest.skip(what)


def start_server(*args):
    """`scrawl serve` on a free port; returns (process, base URL) once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "scrawl", "serve", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"scrawl serve did not start: {proc.stdout.read()}")
        time.sleep(0.1)
    return proc, url


@pytest.fixture(scope="module")
def server():
    proc, url = start_server()
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        _missing(f"Chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    print(f"\nscreenshots: {ARTIFACTS}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server + "/")
    yield page
    context.close()
    # A CSP violation (an inline script or style) or a JS error shows up here.
    assert not problems, problems


def _strokes(text: str, box: tuple[float, float, float, float]) -> list[list[tuple[float, float]]]:
    """Strokes for `text` written left to right in box (x, y, w, h) of the pad, in canvas pixels."""
    x, y, w, h = box
    cell = w / len(text)
    out = []
    for i, ch in enumerate(text):
        cx, cw = x + i * cell + 0.2 * cell, 0.6 * cell
        for stroke in SHAPES[ch]:
            out.append([(cx + px * cw, y + py * h) for px, py in stroke])
    return out


def _dense(stroke, step=6.0):
    """Points every `step` canvas pixels along the polyline (a hand moves continuously)."""
    pts = [stroke[0]]
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / step))
        pts += [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(1, n + 1)]
    return pts


def _to_client(page, strokes):
    """Canvas pixel coordinates -> CSS pixels in the viewport."""
    r = page.evaluate("(() => { const c = document.getElementById('pad'); const b = c.getBoundingClientRect();"
                      " return [b.left, b.top, b.width / c.width, b.height / c.height]; })()")
    return [[(r[0] + x * r[2], r[1] + y * r[3]) for x, y in _dense(s)] for s in strokes]


def draw_with_mouse(page, strokes):
    for stroke in _to_client(page, strokes):
        page.mouse.move(*stroke[0])
        page.mouse.down()
        for p in stroke[1:]:
            page.mouse.move(*p)
        page.mouse.up()


def draw_with_touch(page, strokes):
    cdp = page.context.new_cdp_session(page)
    for stroke in _to_client(page, strokes):
        x, y = stroke[0]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y, "id": 1}]})
        for x, y in stroke[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y, "id": 1}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def wait_text(page, selector, text, timeout=15000):
    # expect() polls without eval (wait_for_function would need 'unsafe-eval', which the CSP forbids).
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_have_text(text, timeout=timeout)


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


# ------------------------------------------------------------------------------------------ tests


def test_drawing_a_digit_with_the_mouse_shows_it_live(page):
    models = page.evaluate("fetch('/api/models').then(r => r.json())")
    page.locator("#model-info").filter(has_text="model:").wait_for()  # the page has loaded its models
    assert page.locator("#model-picker").is_visible() == (len(models) > 1)  # a picker only with a choice
    draw_with_mouse(page, _strokes("7", (70, 50, 140 / 0.6, 180)))
    wait_text(page, "#label", "7")
    assert page.locator("#top3 li").count() == 3
    assert page.get_attribute("#framed", "src").startswith("data:image/png;base64,")
    shot(page, "single-mouse-7.png")
    page.click("#clear")
    wait_text(page, "#status", re.compile(r"^nothing to read"))
    shot(page, "single-cleared.png")


def test_touch_drawing_on_a_phone_sized_screen(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(server + "/")
    page.evaluate("window.__types = []; document.getElementById('pad').addEventListener('pointerdown',"
                  " e => window.__types.push(e.pointerType))")
    box = page.locator("#pad").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # the pad fits the screen
    draw_with_touch(page, _strokes("4", (60, 50, 160 / 0.6, 180)))
    wait_text(page, "#label", "4")
    assert page.evaluate("window.__types") == ["touch", "touch"]  # two strokes, both by finger
    assert page.evaluate("window.scrollY") == 0  # drawing did not scroll the page (touch-action: none)
    shot(page, "phone-touch-4.png")
    page.click("#undo")  # the stem goes: the answer changes (to another digit, or a doubtful one)
    wait_text(page, "#status", re.compile(r"^(?!it reads 4$)"))
    context.close()


def test_multi_character_mode_reads_a_number_with_boxes(page):
    page.click("#mode-multi")
    draw_with_mouse(page, _strokes("407", (60, 70, 520, 170)))
    wait_text(page, "#text", "407")
    assert page.locator("#pad-boxes rect").count() == 3
    assert page.locator("#chars li").count() == 3
    shot(page, "multi-407.png")


def _photo_of_digits(digits: str) -> bytes:
    """A phone-photo-like JPEG: the bundled sample digits in dark ink on uneven, grainy paper."""
    from scrawl.vision import load_image

    inks = []
    for d in digits:
        path = next(SAMPLES.glob(f"{d}-*"))
        ink = load_image(path)
        ys, xs = np.nonzero(ink > 0.1)
        ink = ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
        scale = 150 / ink.shape[0]
        inks.append(np.asarray(Image.fromarray(ink).resize((round(ink.shape[1] * scale), 150), Image.BILINEAR)))
    page = np.zeros((300, 60 + sum(i.shape[1] + 50 for i in inks)), np.float32)
    x = 50
    for k, ink in enumerate(inks):
        y = 70 + (k % 2) * 12  # a slightly wavy baseline
        page[y: y + ink.shape[0], x: x + ink.shape[1]] = ink
        x += ink.shape[1] + 50
    h, w = page.shape
    light = 0.75 + 0.2 * np.linspace(0, 1, w)[None] * np.linspace(1, 0.6, h)[:, None]  # a lighting gradient
    grain = np.random.default_rng(0).normal(0, 0.02, page.shape)
    gray = np.clip(light * (1 - 0.8 * page) + grain, 0, 1)
    rgb = np.stack([gray, gray * 0.97, gray * 0.92], -1)  # warm paper
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def test_uploading_a_photo_of_several_digits_reads_them(page, tmp_path):
    photo = tmp_path / "digits.jpg"
    photo.write_bytes(_photo_of_digits("2068"))
    page.click("#mode-photo")
    page.set_input_files("#file", str(photo))
    wait_text(page, "#text", "2068")
    assert page.locator("#photo-boxes rect").count() == 4
    page.locator("#photo").evaluate("img => img.decode()")  # the picture is shown before the screenshot
    shot(page, "photo-2068.png")


def test_api_docs_work_offline_under_the_csp(page, server):
    page.goto(server + "/docs")
    page.get_by_text("/api/predict", exact=True).first.wait_for(timeout=15000)
    assert page.get_by_text("/api/read", exact=True).count() >= 1
    shot(page, "api-docs.png")


def test_model_picker_appears_with_two_models(browser, tmp_path):
    import shutil

    from scrawl.runtime.recognizer import bundled_path

    shutil.copy(bundled_path("digits"), tmp_path / "digits-copy.pt")
    proc, url = start_server("--model", f"digits,{tmp_path / 'digits-copy.pt'}")
    try:
        context = browser.new_context(viewport={"width": 1100, "height": 800})
        page = context.new_page()
        seen = []
        page.on("request", lambda r: seen.append(r.url) if "/api/predict" in r.url else None)
        page.goto(url + "/")
        page.locator("#model-picker").wait_for(state="visible")
        # Short names: the bundled model's title, a user's file by its stem (the details are one click away).
        assert page.eval_on_selector_all("#model option", "os => os.map(o => o.textContent)") == ["Digits", "digits-copy"]
        page.select_option("#model", "digits-copy")
        draw_with_mouse(page, _strokes("7", (70, 50, 140 / 0.6, 180)))
        wait_text(page, "#label", "7")
        assert seen and "model=digits-copy" in seen[-1]
        shot(page, "model-picker.png")
        context.close()
    finally:
        proc.terminate()
        proc.wait(10)
