"""The fast ways of reading many small scans (issue 14 item 11) give exactly what the general path gives.

scrawl.vision.scans.frame_many (what `scrawl predict`'s workers call) makes the ink maps of small
grayscale scans together, per grey level (flatten_levels, _inks_from_gray8); plain 8-bit grayscale PNGs
are decoded by OpenCV (ink._plain_gray_png); Otsu's threshold has a one-histogram and a many-histogram
form. Each is compared here with the general path (`frame`, `load_image`, `lighting.flatten`, np.median,
OpenCV's Otsu) on varied images: the same arrays to the last bit, the same errors.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from scrawl.errors import ImageError, ScrawlError
from scrawl.vision import FrameSpec, frame, line_spec, load_image
from scrawl.vision import ink as ink_module
from scrawl.vision import lighting, scans
from scrawl.vision.scans import frame_many, load_ink_many

SPECS = [FrameSpec("mnist"), FrameSpec("emnist"), line_spec(32)]


def png(array: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG", **kw)
    return buf.getvalue()


def glyph(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random pen stroke, ink bright, float32 side x side in [0, 1], cropped to its box or not."""
    big = np.zeros((8 * side, 8 * side), np.uint8)
    pts = (rng.uniform(0.15, 0.85, (int(rng.integers(2, 7)), 2)) * 8 * side).astype(np.int32)
    cv2.polylines(big, [pts], False, 255, int(rng.integers(4, 3 * side)), cv2.LINE_AA)
    if rng.random() < 0.5:  # tightly cropped: the ink touches the edges
        x, y, w, h = cv2.boundingRect(big)
        big = cv2.resize(big[y : y + h, x : x + w], (8 * side, 8 * side), interpolation=cv2.INTER_AREA)
    return cv2.resize(big, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def scan(rng: np.random.Generator) -> np.ndarray:
    """A uint8 scan of a glyph: any size from tiny to past the small-picture limit, either polarity,
    paper and pen levels, blur, noise, sometimes a light gradient."""
    h = int(rng.choice([3, 8, 12, 16, 20, 28, 40, 63, 64, 90]))
    w = int(np.clip(h * rng.uniform(0.5, 2.0), 2, 300))
    ink = cv2.resize(glyph(rng, 64), (w, h), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        ink = cv2.GaussianBlur(ink, (0, 0), rng.uniform(0.3, 1.5))
    paper, pen = rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.4)
    if rng.random() < 0.4:
        paper, pen = 1 - paper, 1 - pen
    page = paper + (pen - paper) * ink + rng.normal(0, rng.choice([0, 0.01, 0.04]), ink.shape)
    if rng.random() < 0.2:
        page *= np.linspace(1, rng.uniform(0.5, 1), w, dtype=np.float32)[None]
    return (np.clip(page, 0, 1) * 255 + 0.5).astype(np.uint8)


def odd_pictures(rng: np.random.Generator) -> list[np.ndarray]:
    """Degenerate small pictures: blank, flat, two levels, one pixel of ink, noise, single rows/columns."""
    one = np.full((28, 28), 255, np.uint8)
    one[14, 14] = 0
    return [np.full((28, 28), 255, np.uint8), np.zeros((30, 20), np.uint8), np.full((9, 9), 128, np.uint8),
            np.tile(np.uint8([100, 101]), (12, 6)), np.tile(np.uint8([0, 255]), (12, 6)), one,
            rng.integers(0, 256, (40, 40)).astype(np.uint8), rng.integers(0, 256, (1, 50)).astype(np.uint8),
            rng.integers(0, 256, (50, 1)).astype(np.uint8), np.uint8([[0, 255], [255, 255]]), np.uint8([[7]])]


def sources(rng: np.random.Generator, tmp_path) -> list:
    """Scans as arrays, PNG bytes, PNG files and JPEG bytes; other kinds of picture; broken inputs."""
    out: list = []
    for i, a in enumerate([scan(rng) for _ in range(160)] + odd_pictures(rng)):
        kind = i % 4
        if kind == 0:
            out.append(a)
        elif kind == 1:
            out.append(png(a))
        elif kind == 2:
            path = tmp_path / f"{i}.png"
            path.write_bytes(png(a))
            out.append(str(path))
        else:
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, "JPEG", quality=80)
            out.append(buf.getvalue())
    rgb = np.dstack([scan(rng)] * 3)
    rgba = np.zeros((80, 80, 4), np.uint8)
    cv2.line(rgba, (10, 10), (70, 60), (200, 30, 30, 255), 6)
    out += [rgb, png(rgb), rgba, png(rgba), Image.fromarray(scan(rng)), scan(rng).astype(np.float32) / 255,
            str(tmp_path / "missing.png"), b"not an image", png(scan(rng))[:60]]
    return out


def same(a, b) -> bool:
    if isinstance(a, ScrawlError) or isinstance(b, ScrawlError):
        return type(a) is type(b) and str(a) == str(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def one_by_one(fn, items) -> list:
    out = []
    for item in items:
        try:
            out.append(fn(item))
        except ScrawlError as exc:
            out.append(exc)
    return out


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.framing)
def test_frame_many_is_frame_for_each(spec, tmp_path):
    items = sources(np.random.default_rng(11), tmp_path)
    expected = one_by_one(lambda s: frame(s, spec), items)
    got = [y for i in range(0, len(items), 32) for y in frame_many(items[i : i + 32], spec)]
    assert len(got) == len(items)
    assert sum(isinstance(x, ScrawlError) for x in expected) >= 5  # blank pictures and broken inputs
    bad = [i for i, (x, y) in enumerate(zip(expected, got)) if not same(x, y)]
    assert not bad, f"{len(bad)} differ, e.g. source {bad[0]}: {type(items[bad[0]]).__name__}"


def test_load_ink_many_is_load_image_for_each(tmp_path):
    items = sources(np.random.default_rng(12), tmp_path)
    expected = one_by_one(load_image, items)
    got = [x.full() if isinstance(x, ink_module.InkBox) else x for x in load_ink_many(items)]
    assert all(same(x, y) for x, y in zip(expected, got))


def test_flatten_levels_is_flatten():
    """Per picture: flatten's map is the table at each pixel's level, its flag the same, and the
    histogram the one of u8(map); both polarity branches and the cropped flag are exercised."""
    rng = np.random.default_rng(13)
    pictures = [scan(rng) for _ in range(300)] + odd_pictures(rng)
    levels = scans.flatten_levels(pictures)
    seen = set()
    for g8, lv in zip(pictures, levels):
        covered = min(g8.shape) < lighting.FLATTEN_MIN_SIDE and max(g8.shape) <= 2 * lighting.MEDIAN_SIDE
        assert (lv is not None) == covered
        if lv is None:
            continue
        x, cropped = lighting.flatten(g8.astype(np.float32) / 255)
        table, flag, hist = lv
        assert np.array_equal(table[g8], x) and flag == cropped
        assert np.array_equal(hist, lighting.hist(lighting.u8(x)))
        seen.add((cropped, bool(x.any())))
    assert seen == {(False, False), (False, True), (True, True)}


def test_polarity_from_the_histogram_is_dark_inks():
    """_dark_ink_rows (histogram arithmetic) decides like _dark_ink (the pixels) on small pictures with
    dark and light deviations of every balance around the tie, the noise dead zone included."""
    rng = np.random.default_rng(17)
    pictures = []
    for _ in range(3000):
        g = np.full(int(rng.integers(9, 900)), int(rng.integers(20, 236)), np.int64)
        dark, light = rng.integers(0, g.size // 2 + 1, 2)
        g[:dark] -= rng.integers(0, 40, dark)
        g[g.size - light :] += rng.integers(0, 40, light)
        g += rng.integers(-3, 4, g.size) * (rng.random() < 0.5)  # noise: a wider dead zone
        g = rng.permutation(np.clip(g, 0, 255).astype(np.uint8))
        w = int(rng.integers(1, 8))
        pictures.append(np.ascontiguousarray(g[: g.size // w * w].reshape(-1, w)))
    h = np.stack([lighting.hist(p) for p in pictures])
    m = np.rint(lighting.hist_percentiles(h, 50) * 255).astype(np.int64)
    rows = scans._dark_ink_rows(h, m, np.array([p.size for p in pictures]))
    expected = [lighting._dark_ink(p, lighting.hist(p)) for p in pictures]
    assert 0.5 < np.mean(expected) < 0.95  # both answers, often
    assert rows.tolist() == expected


def test_otsu_forms_agree_with_opencv():
    rng = np.random.default_rng(14)
    hists, cases = [], []
    for i in range(400):
        a = np.clip(rng.normal(rng.uniform(0, 255), rng.uniform(0.3, 60), int(rng.integers(1, 3000))), 0, 255)
        a = a.astype(np.uint8)[None]
        if i % 5 == 0:  # a few levels only
            a = rng.choice(rng.integers(0, 256, int(rng.integers(1, 4))), (1, 200)).astype(np.uint8)
        cases.append(a)
        hists.append(lighting.hist(a))
    h = np.stack(hists + [np.zeros(256, np.float32), np.bincount([0, 255], minlength=256).astype(np.float32) * 3e7])
    rows = lighting.otsu_rows(h)
    assert [lighting.otsu(x) for x in h] == rows.tolist()
    for a, t in zip(cases, rows):
        assert t == int(cv2.threshold(a, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0])
    for q in (50, 90):
        assert lighting.hist_percentiles(h, q).tolist() == [lighting.hist_percentile(x, q) for x in h]


def test_median_is_numpys():
    rng = np.random.default_rng(15)
    for n in list(range(1, 12)) + [99, 100, 783, 784]:
        v = np.round(rng.random(n, dtype=np.float32) * 20) / 7
        assert lighting.median(v) == float(np.median(v))


# ------------------------------------------------------------------------------------------- PNG decoding


def with_chunk(data: bytes, kind: bytes, payload: bytes) -> bytes:
    """`data` (a PNG) with a chunk inserted after IHDR."""
    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return data[:33] + chunk + data[33:]


def test_plain_gray_pngs_decode_like_pillow_and_others_are_left_to_it():
    rng = np.random.default_rng(16)
    a = scan(rng)
    plain = png(a)
    assert np.array_equal(ink_module._plain_gray_png(plain), a)
    assert np.array_equal(ink_module._plain_gray_png(with_chunk(plain, b"pHYs", bytes(9))), a)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: only Pillow applies it
    refused = {
        "transparency": png(a, transparency=255), "EXIF": png(a, exif=exif.tobytes()),
        "gamma": with_chunk(plain, b"gAMA", struct.pack(">I", 45455)),
        "text": with_chunk(plain, b"tEXt", b"Raw profile type exif\x00..."),
        "16-bit": png(a.astype(np.uint16) * 257), "palette": _palette_png(a), "RGB": png(np.dstack([a] * 3)),
        "truncated": plain[:-20],
        "bad header checksum": plain[:29] + bytes(4) + plain[33:],
    }
    for name, data in refused.items():
        assert ink_module._plain_gray_png(data) is None, name
    rotated = load_image(refused["EXIF"])  # Pillow turns it
    assert rotated.shape == a.shape[::-1]
    with pytest.raises(ImageError):
        load_image(refused["bad header checksum"])


def _palette_png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).convert("P").save(buf, "PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- real digits


@pytest.mark.realdata
def test_frame_many_is_frame_on_mnist_scans(real_data_dir, tmp_path):
    """The benchmark's case: MNIST test digits as PNG files, dark on white, and tight crops of them."""
    raw = gzip.open(real_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").read()
    digits = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:600]
    paths = []
    for i, d in enumerate(digits):
        if i % 2:
            x, y, w, h = cv2.boundingRect(d)
            d = cv2.resize(d[y : y + h, x : x + w], (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), 255 - d if i % 3 else d)
    for spec in SPECS[:2]:
        got = [y for i in range(0, len(paths), 64) for y in frame_many(paths[i : i + 64], spec)]
        assert all(same(frame(p, spec), y) for p, y in zip(paths, got))


def test_framing_grid_benchmark_compares_grids_on_real_digits(real_data_dir, tmp_path):
    """benchmarks/framing_grid.py (why OVERSAMPLE is 4): on real MNIST digits both grids re-frame close
    to MNIST's own images and the digit models read them; the reference grid differs from itself nowhere."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "framing_grid.py"
    r = subprocess.run([sys.executable, str(script), "--images", "300", "--repeats", "1", "--grids", "8,4",
                        "--data-dir", str(real_data_dir), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "framing_grid.json").read_text())["rows"]
    assert [row["grid"] for row in rows] == [8, 4]
    for row in rows:
        assert row["us_per_image"] > 0 and row["mean_abs_diff_to_mnist"] < 0.05
        assert row["median_centre_distance_px"] < 0.6
        assert all(v["accuracy"] >= 0.97 for v in row["readers"].values())
    assert all(v["answers_differ_from_grid_8"] == 0 for v in rows[0]["readers"].values())
    assert "| 4 |" in (tmp_path / "framing_grid.md").read_text()
