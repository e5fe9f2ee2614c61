"""Tests for scrawl.vision.ink and .framing: one function turns any user image into MNIST/EMNIST-style input."""

import gzip
import io
import json
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from scrawl.vision import framing as F
from scrawl.errors import EmptyImageError, ImageError, ScrawlError
from scrawl.vision import MAX_PIXELS, FrameSpec, frame, frame_batch, load_image, to_input

# Range of the fraction of pixels > 0.5 per MNIST test digit (1st..99th percentile: 0.046..0.237,
# measured on the 10,000 t10k images); test_thin_pen_range_matches_mnist re-measures it.
MNIST_CORE_FRACTION = (0.04, 0.25)


# ------------------------------------------------------------------------------------------ helpers


def read_idx_images(path, n=None):
    with gzip.open(path) as f:
        data = f.read()
    magic, count, rows, cols = struct.unpack(">IIII", data[:16])
    assert magic == 2051
    images = np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols)
    return images[:n] if n else images


@pytest.fixture(scope="module")
def mnist(real_data_dir):
    return read_idx_images(real_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", 1000)


def draw_digit(scale=10, thickness=None, size=28):
    """A '2'-like glyph drawn at `scale` x MNIST resolution, ink bright, uint8 (size*scale square)."""
    s = scale
    pts = np.array([[8, 9], [11, 5], [16, 5], [19, 8], [18, 12], [9, 21], [8, 23], [20, 23]], np.float64)
    canvas = np.zeros((size * s, size * s), np.uint8)
    thick = thickness if thickness is not None else int(round(2.4 * s))
    cv2.polylines(canvas, [np.round(pts * s).astype(np.int32)], False, 255, thick, cv2.LINE_AA)
    return canvas


@pytest.fixture(scope="module")
def digit():
    """MNIST-like 28x28 uint8 digit: drawn at 10x, shrunk with area averaging."""
    return cv2.resize(draw_digit(10), (28, 28), interpolation=cv2.INTER_AREA)


def corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def centroid(img):
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    m = img.sum()
    return float((img * ys).sum() / m), float((img * xs).sum() / m)


def encode(array, fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kw)
    return buf.getvalue()


def png_header_only(width, height):
    """A PNG signature + valid IHDR (correct CRC) declaring width x height, then a tiny IDAT."""

    def chunk(kind, payload):
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\0" * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------------------ FrameSpec


def test_framespec_round_trip_through_json():
    for spec in (FrameSpec(), FrameSpec("emnist"), FrameSpec("mnist", size=32, box=24)):
        d = json.loads(json.dumps(spec.to_dict()))
        assert d == {"framing": spec.framing, "size": spec.size, "box": spec.box}
        assert FrameSpec.from_dict(d) == spec


@pytest.mark.parametrize(
    "d, words",
    [
        ({"framing": "lecun"}, "unknown framing"),
        ({"framing": "mnist", "size": 0}, "size"),
        ({"framing": "mnist", "size": 28, "box": 40}, "box"),
        ({"size": "28"}, "integer"),
        ({"size": True}, "integer"),
        ({"framing": "mnist", "dpi": 300}, "unknown FrameSpec field"),
    ],
)
def test_framespec_rejects_bad_values(d, words):
    with pytest.raises(ValueError, match=words):
        FrameSpec.from_dict(d)


def test_framespec_constructor_validates():
    with pytest.raises(ValueError, match="unknown framing"):
        FrameSpec("centre")


# ------------------------------------------------------------------------------------------ load_image


def test_load_image_resolves_polarity_and_contrast(digit):
    plain = load_image(digit)
    assert plain.dtype == np.float32 and plain.shape == (28, 28)
    assert plain.min() >= 0 and plain.max() == pytest.approx(1, abs=0.02)
    # Grey ink (0.3) on a light-grey page (0.8): ink becomes 1, the page 0.
    page = (0.8 - 0.5 * digit.astype(np.float32) / 255).astype(np.float32)
    ink = load_image(page)
    assert ink[digit > 200].mean() > 0.95
    assert ink[digit == 0].max() < 0.05
    assert corr(ink, plain) > 0.97


def test_load_image_accepts_every_source_kind(digit, tmp_path):
    path = tmp_path / "digit.png"
    Image.fromarray(digit).save(path)
    rgb = np.repeat(digit[..., None], 3, axis=2)
    data = path.read_bytes()
    sources = [str(path), path, data, bytearray(data), memoryview(data), Image.fromarray(digit), digit,
               digit.astype(np.float32) / 255, rgb, digit > 127, digit.astype(np.uint16) * 257]
    base = load_image(digit)
    for source in sources:
        out = load_image(source)
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert corr(out, base) > 0.95, type(source)


def test_load_image_canvas_alpha_any_stroke_colour(digit):
    """Canvas drawings: strokes on a transparent background; RGB under transparency is arbitrary."""
    base = load_image(digit)
    for stroke, under in ((0, 0), (0, 255), (255, 255), (255, 0), (200, 30)):
        rgba = np.zeros((28, 28, 4), np.uint8)
        rgba[..., :3] = np.where(digit[..., None] > 0, stroke, under)
        rgba[..., 3] = digit
        assert corr(load_image(rgba), base) > 0.97, (stroke, under)
        assert corr(load_image(encode(rgba, "PNG")), base) > 0.97


def test_load_image_ignores_gif_first_frame_only(digit):
    other = np.zeros_like(digit)
    other[5:10, 5:20] = 255
    buf = io.BytesIO()
    Image.fromarray(255 - digit).save(buf, "GIF", save_all=True, append_images=[Image.fromarray(255 - other)])
    assert corr(load_image(buf.getvalue()), load_image(digit)) > 0.95


def test_load_image_applies_exif_orientation():
    img = 255 - draw_digit(4)  # dark ink on white, not rotation-symmetric
    stored = np.ascontiguousarray(np.rot90(img))  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    upright = load_image(data)
    assert upright.shape == img.shape
    assert corr(upright, load_image(img)) > 0.9
    assert corr(load_image(stored), load_image(img)) < 0.5  # the tag matters


def test_load_image_divides_out_uneven_lighting():
    ink = draw_digit(10).astype(np.float32) / 255
    yy, xx = np.mgrid[0:280, 0:280] / 280
    light = 0.35 + 0.6 * xx * (0.5 + 0.5 * yy)  # strong shadow on the left
    photo = light * (1 - 0.8 * ink) + np.random.default_rng(0).normal(0, 0.01, ink.shape)
    data = encode(np.clip(photo * 255, 0, 255).astype(np.uint8), "JPEG", quality=85)
    out = load_image(data)
    assert out[ink == 0].mean() < 0.02  # the shadow is not ink
    assert np.percentile(out[ink > 0.9], 10) > 0.7  # ink in the shadow and in the light
    assert corr(out, ink) > 0.95


def test_coloured_ink_under_a_lighting_gradient():
    # Blue ink, light falling off across the page: the dim half of the paper outweighs dark ink in a
    # global histogram, so polarity must be judged against the local background level.
    ink = draw_digit(10).astype(np.float32) / 255
    page = np.zeros((360, 360), np.float32)
    page[40:320, 40:320] = ink
    light = np.linspace(120, 245, 360)[None, :].repeat(360, 0) + np.random.default_rng(1).normal(0, 6, (360, 360))
    rgb = np.stack([light * (1 - 0.55 * page), light * (1 - 0.45 * page), light * (1 - 0.15 * page)], -1)
    out = load_image(encode(np.clip(rgb, 0, 255).astype(np.uint8), "JPEG", quality=85))
    assert corr(out, page) > 0.9


def test_faint_pencil_is_read(digit):
    big = cv2.resize(digit, (280, 280), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    pencil = 0.85 * (1 - 0.3 * big) + np.random.default_rng(5).normal(0, 0.01, big.shape)
    data = encode(np.clip(pencil * 255, 0, 255).astype(np.uint8), "JPEG", quality=85)
    out = frame(data)
    assert out.max() > 0.95  # stretched to full contrast
    assert corr(out, frame(digit)) > 0.9


def test_load_image_transparent_margins_around_paper():
    """An RGBA picture of paper (dark ink on opaque white) with transparent margins is not a canvas."""
    ink = draw_digit(10)
    rgba = np.zeros((320, 320, 4), np.uint8)
    rgba[20:300, 20:300, :3] = (255 - ink)[..., None]
    rgba[20:300, 20:300, 3] = 255
    out = load_image(rgba)
    assert corr(out[20:300, 20:300], ink) > 0.95
    assert out[:20].max() < 0.05


def test_load_image_high_bit_depth_and_file_objects(digit):
    base = load_image(digit)
    page16 = (65535 - digit.astype(np.uint16) * 200).astype(np.uint16)  # 16-bit scan, dark ink
    assert corr(load_image(encode(page16, "PNG")), base) > 0.97
    page_f = (1000 - 3.0 * digit).astype(np.float32)  # float TIFF in arbitrary units
    assert corr(load_image(encode(page_f, "TIFF")), base) > 0.97
    assert corr(load_image(io.BytesIO(encode(255 - digit, "PNG"))), base) > 0.97
    with pytest.raises(ImageError, match="binary mode"):
        load_image(io.StringIO("not bytes"))


def test_rgba_photo_with_a_few_transparent_pixels():
    """Mostly opaque: a picture, not a canvas; the alpha must not turn the whole page into ink."""
    ink = draw_digit(10)
    rgba = np.full((280, 280, 4), 255, np.uint8)
    rgba[..., :3] = (255 - ink)[..., None]
    rgba[0, 0, 3] = 0
    rgba[-1, -3:, 3] = 128
    assert corr(load_image(rgba), ink) > 0.95


# ------------------------------------------------------------------------------------------ errors


def test_empty_bytes():
    with pytest.raises(ImageError, match="empty image data"):
        load_image(b"")


def test_random_bytes():
    with pytest.raises(ImageError, match="not an image"):
        load_image(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def test_truncated_png(digit):
    data = encode(np.random.default_rng(2).integers(0, 256, (200, 200), dtype=np.uint8), "PNG")
    with pytest.raises(ImageError, match="truncated"):
        load_image(data[: len(data) // 2])


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("width, height", [(50_000, 50_000), (10_000, 10_000), (10_000, 5_000)])
def test_decompression_bomb_refused_from_header(width, height):
    assert width * height > MAX_PIXELS
    data = png_header_only(width, height)
    assert len(data) < 100
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large"):
        load_image(data)
    assert time.perf_counter() - start < 0.5  # no 2.5 GB allocation / decode


def test_zero_size_png():
    with pytest.raises(ImageError, match="zero width or height"):
        load_image(png_header_only(0, 10))


def test_unreadable_paths(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageError, match="not found") as info:
        load_image(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty image data") as info:
        load_image(str(empty))
    assert str(empty) in str(info.value)


@pytest.mark.parametrize(
    "source, words",
    [
        (np.zeros((0, 5), np.uint8), "zero width or height"),
        (np.zeros((4, 28, 28), np.uint8), "frame_batch"),
        (np.full((5, 5), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((5, 5), np.nan, np.float32), "NaN"),
        (np.zeros((5, 5), np.complex64), "dtype"),
        (12345, "unsupported image source"),
    ],
)
def test_bad_arrays_and_types(source, words):
    with pytest.raises(ImageError, match=words):
        load_image(source)


def test_errors_are_scrawl_errors():
    assert issubclass(EmptyImageError, ImageError) and issubclass(ImageError, ScrawlError)


# ------------------------------------------------------------------------------------------ empty


def blank_photo():
    gradient = 30 * np.mgrid[0:300, 0:400][1] / 400
    grain = np.random.default_rng(3).normal(0, 4, (300, 400))
    return np.clip(200 + gradient + grain, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros((280, 280), np.uint8),  # empty canvas
        lambda: np.full((280, 280), 255, np.uint8),  # all-white page
        lambda: np.zeros((280, 280, 4), np.uint8),  # fully transparent canvas
        lambda: encode(blank_photo(), "JPEG", quality=80),  # grain, a lighting gradient, JPEG noise
    ],
    ids=["black-canvas", "white-page", "transparent", "blank-photo"],
)
def test_blank_images_have_no_ink(make):
    with pytest.raises(EmptyImageError, match="no ink"):
        frame(make())


def test_noise_specks_are_not_ink():
    rng = np.random.default_rng(4)
    canvas = np.zeros((280, 280), np.uint8)
    for y, x in rng.integers(5, 275, (8, 2)):
        canvas[y : y + rng.integers(1, 3), x : x + rng.integers(1, 3)] = 255
    with pytest.raises(EmptyImageError, match="no ink"):
        frame(canvas)
    with pytest.raises(EmptyImageError):
        frame(255 - canvas)  # dark specks on white paper


def test_specks_do_not_move_the_frame(digit):
    big = cv2.resize(digit, (280, 280), interpolation=cv2.INTER_CUBIC)
    dusty = big.copy()
    dusty[3:5, 3:5] = 255  # dust in a corner
    dusty[270:272, 150:152] = 255
    assert corr(frame(dusty), frame(big)) > 0.98


# ------------------------------------------------------------------------------------------ mnist framing


def test_frame_output_contract(digit):
    out = frame(digit)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1 and out.max() > 0.95
    rows, cols = np.nonzero(out > 0.02)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 in (20, 21, 22)  # the 20x20 box (+ anti-aliasing)
    cy, cx = centroid(out)
    assert abs(cy - 14) < 0.5 and abs(cx - 14) < 0.5


def transformed_versions(d):
    """The same digit (28x28 uint8, ink bright) as users might hand it over."""
    big = cv2.resize(d, (280, 280), interpolation=cv2.INTER_CUBIC)
    paper = 255 - big
    canvas = np.zeros((300, 500), np.uint8)
    canvas[150:178, 40:68] = d  # small, off-centre, in a large canvas
    rgba_black = np.zeros((280, 280, 4), np.uint8)
    rgba_black[..., 3] = big
    rgba_white = rgba_black.copy()
    rgba_white[..., :3] = 255
    blue_on_beige = np.stack(
        [245 - 0.9 * big, 235 - 0.7 * big, 210 - 0.1 * big], axis=2
    ).clip(0, 255).astype(np.uint8)
    versions = {
        "shifted": canvas,
        "scaled10x": big,
        "inverted": paper,
        "rgba-black": rgba_black,
        "rgba-white": rgba_white,
        "blue-on-beige": blue_on_beige,
        "float": d.astype(np.float32) / 255,
    }
    for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"):
        versions[fmt] = encode(paper, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    versions["JPEG-rgb"] = encode(blue_on_beige, "JPEG", quality=75)
    versions["WEBP-rgba"] = encode(rgba_white, "WEBP", lossless=True)
    return versions


def test_framing_is_invariant_to_how_the_digit_is_given(digit):
    base = frame(digit)
    for name, version in transformed_versions(digit).items():
        out = frame(version)
        assert out.shape == (28, 28)
        assert corr(out, base) > 0.9, name
        assert np.abs(out - base).mean() < 0.08, name


@pytest.mark.realdata
def test_framing_is_invariant_on_real_digits(mnist):
    for d in mnist[:5]:
        base = frame(d)
        for name, version in transformed_versions(d).items():
            assert corr(frame(version), base) > 0.9, name


def test_path_input(digit, tmp_path):
    path = tmp_path / "scan.jpg"
    Image.fromarray(255 - cv2.resize(digit, (280, 280))).save(path, quality=90)
    assert corr(frame(path), frame(digit)) > 0.9


def foreign_framing(d):
    """The 28x28 digit shrunk to 18x18 and put in the top-right corner (e.g. LEAF's uncropped resize)."""
    small = np.zeros((28, 28), np.float32)
    small[:18, 10:] = cv2.resize(d, (18, 18), interpolation=cv2.INTER_AREA) / 255
    return small


def test_small_28x28_ink_map_is_reframed(digit):
    """A foreign 28x28 framing is not passed through."""
    small = foreign_framing(digit)
    out = frame(small)
    assert corr(out, small) < 0.5
    assert corr(out, frame(digit)) > 0.85
    cy, cx = centroid(out)
    assert abs(cy - 14) < 0.5 and abs(cx - 14) < 0.5


@pytest.mark.realdata
def test_foreign_framing_of_real_digits_is_undone(mnist):
    """Shrinking loses detail, so this is looser than the invariance tests, but far above chance."""
    correlations = [corr(frame(foreign_framing(d)), d) for d in mnist[:50]]
    assert np.median(correlations) > 0.85
    assert np.median([corr(foreign_framing(d), d) for d in mnist[:50]]) < 0.5


def test_box_is_shifted_back_into_the_frame():
    """An inverted T with a heavy base: putting its centre of mass at the centre would push the top
    of its 20 px box out of the frame; the box is shifted back instead (the mass stays low)."""
    canvas = np.zeros((400, 400), np.uint8)
    canvas[50:250, 185:215] = 255  # stem
    canvas[250:350, 50:350] = 255  # heavy base
    out = frame(canvas)
    rows = np.nonzero(out.max(1) > 0.02)[0]
    assert rows[0] == 0 and rows[-1] <= 21
    assert out[0].max() > 0.5  # the top touches the border
    cy, cx = centroid(out)
    assert cy > 14.25 and abs(cx - 14) < 0.5  # 14.49: it could not be centred (1/8 px precision)


def stroke_core_fraction(img):
    return float((img > 0.5).mean())


def test_thin_pen_gets_mnist_stroke_width(monkeypatch):
    thin = draw_digit(10, thickness=3)  # a 3 px pen on a 280x280 canvas
    low, high = MNIST_CORE_FRACTION
    out = frame(thin)
    assert low <= stroke_core_fraction(out) <= high
    assert out.max() > 0.95
    # Control: without stroke normalisation the same drawing is hair-thin (this test can fail).
    monkeypatch.setitem(F.STROKE, "mnist", (0.01, 10))
    assert stroke_core_fraction(frame(thin)) < low


def test_thick_ink_is_left_alone():
    bold = draw_digit(10, thickness=40)
    out = frame(bold)
    assert stroke_core_fraction(out) > stroke_core_fraction(frame(draw_digit(10)))


@pytest.mark.realdata
def test_thin_pen_range_matches_mnist(mnist):
    fractions = (mnist > 127).mean(axis=(1, 2))
    low, high = np.percentile(fractions, [1, 99])
    assert MNIST_CORE_FRACTION[0] <= low and high <= MNIST_CORE_FRACTION[1]
    thin = stroke_core_fraction(frame(draw_digit(10, thickness=3)))
    assert low <= thin <= high


@pytest.mark.realdata
def test_stroke_width_constants_match_real_data(mnist, real_data_dir):
    """The STROKE floors sit inside the real width distributions (between the 10th and 60th pct)."""
    emnist = read_idx_images(real_data_dir / "emnist" / "emnist-mnist-test-images-idx3-ubyte.gz", 500)
    for name, images in (("mnist", mnist[:500]), ("emnist", emnist)):
        widths = [F._stroke_width(cv2.resize(d.astype(np.float32) / 255, (224, 224))) / 8 for d in images]
        p10, p60 = np.percentile(widths, [10, 60])
        assert p10 <= F.STROKE[name][0] <= p60, (name, p10, p60)


@pytest.mark.realdata
def test_real_mnist_digits_frame_to_themselves(mnist):
    """MNIST is already framed this way: re-framing 100 test digits changes them little."""
    originals = mnist[:100].astype(np.float32) / 255
    framed = np.stack([frame(d) for d in mnist[:100]])
    mad = np.abs(framed - originals).mean(axis=(1, 2))
    assert mad.mean() < 0.04 and mad.max() < 0.1
    correlations = [corr(a, b) for a, b in zip(framed, originals)]
    assert np.median(correlations) > 0.95 and min(correlations) > 0.7
    for img in framed:
        cy, cx = centroid(img)
        assert abs(cy - 14) < 0.5 and abs(cx - 14) < 0.5
    # And the original MNIST centre of mass is where we put it (pixel index 14, not 13.5).
    cys, cxs = zip(*(centroid(o) for o in originals))
    assert abs(np.mean(cys) - 14) < 0.1 and abs(np.mean(cxs) - 14) < 0.1


# ------------------------------------------------------------------------------------------ emnist framing


def test_emnist_framing_centres_the_box_with_2px_margin():
    glyph = np.zeros((300, 300), np.uint8)
    cv2.rectangle(glyph, (50, 40), (80, 260), 255, -1)  # an "L": centre of mass far from the box centre
    cv2.rectangle(glyph, (50, 230), (200, 260), 255, -1)
    out = frame(glyph, FrameSpec("emnist"))
    assert out.shape == (28, 28) and out.dtype == np.float32 and out.max() == pytest.approx(1)
    rows = np.nonzero(out.max(1) > 0.3)[0]
    cols = np.nonzero(out.max(0) > 0.3)[0]
    top, bottom, left, right = rows[0], 27 - rows[-1], cols[0], 27 - cols[-1]
    assert 1 <= top <= 3 and 1 <= bottom <= 3  # long side: ~2 px from the border
    assert abs(top - bottom) <= 1 and abs(left - right) <= 1  # centred by its box
    # The mnist framing centres the mass instead, so the same glyph sits off-centre there.
    m = frame(glyph)
    mcols = np.nonzero(m.max(0) > 0.3)[0]
    assert abs(mcols[0] - (27 - mcols[-1])) >= 3


@pytest.mark.realdata
def test_real_emnist_digits_frame_to_themselves(real_data_dir):
    images = read_idx_images(real_data_dir / "emnist" / "emnist-mnist-test-images-idx3-ubyte.gz", 300)
    framed = frame_batch(images, FrameSpec("emnist"))
    originals = images.astype(np.float32) / 255
    mad = np.abs(framed - originals).mean(axis=(1, 2))
    correlations = [corr(a, b) for a, b in zip(framed, originals)]
    # A few EMNIST images include NIST specks in their box; we drop specks, so allow outliers.
    assert np.median(mad) < 0.05 and np.median(correlations) > 0.95
    assert np.mean(np.array(correlations) > 0.9) > 0.9
    assert abs((framed > 0.5).mean() - (originals > 0.5).mean()) < 0.02  # same stroke weight


# ------------------------------------------------------------------------------------------ batch, tensor


@pytest.mark.realdata
def test_frame_batch_real_mnist(mnist):
    images = mnist.copy()
    images[7] = 0
    start = time.perf_counter()
    out = frame_batch(images)
    elapsed = time.perf_counter() - start
    assert out.shape == (1000, 28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert not out[7].any()
    assert (out.reshape(1000, -1).max(1) > 0.8).sum() == 999
    assert elapsed < 5, f"frame_batch took {elapsed:.1f} s for 1000 images"
    # Same framing as a single user image (through load_image) for clean data.
    single = np.stack([frame(d) for d in mnist[10:30]])
    assert np.mean([corr(a, b) for a, b in zip(single, out[10:30])]) > 0.98


def test_frame_batch_accepts_float_and_rejects_bad_shapes(digit):
    batch = np.stack([digit, np.zeros_like(digit)]).astype(np.float32) / 255
    out = frame_batch(batch, FrameSpec("emnist"))
    assert out.shape == (2, 28, 28) and out[0].max() == pytest.approx(1) and not out[1].any()
    with pytest.raises(ImageError, match="N, H, W"):
        frame_batch(digit)
    with pytest.raises(ImageError, match="dtype"):
        frame_batch(batch.astype(np.int64))


def test_frame_respects_spec_size_and_box(digit):
    out = frame(digit, FrameSpec(size=32, box=16))
    assert out.shape == (32, 32)
    rows, cols = np.nonzero(out > 0.02)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 in (16, 17, 18)
    assert frame(digit, FrameSpec("emnist", size=32)).shape == (32, 32)


def test_to_input_of_framed_images():
    """Framed images (float) become model input; more cases in tests/test_to_input.py."""
    torch = pytest.importorskip("torch")
    one = to_input(np.ones((28, 28), np.float32))
    assert one.shape == (1, 1, 28, 28) and one.dtype == np.float32
    many = to_input(np.zeros((5, 28, 28), np.float64))
    assert many.shape == (5, 1, 28, 28) and many.dtype == np.float32
    tensor = to_input(torch.zeros((5, 28, 28), dtype=torch.float64))
    assert tensor.shape == (5, 1, 28, 28) and tensor.dtype == torch.float32
    with pytest.raises(ValueError):
        to_input(np.zeros((2, 2, 28, 28)))


def test_otsu_from_the_histogram_matches_opencv():
    """_normalise takes Otsu's threshold from the histogram it already has; it must be OpenCV's."""
    import cv2

    from scrawl.vision.ink import _hist, _otsu

    rng = np.random.default_rng(1)
    cases = [rng.integers(0, 256, (50, 60)), np.clip(rng.normal(90, 25, (40, 40)), 0, 255),
             np.zeros((8, 8)), np.full((8, 8), 200), (rng.random((30, 30)) < 0.1) * 255]
    for _ in range(200):
        a = np.zeros((64, 64))
        a[rng.integers(0, 64, 40), rng.integers(0, 64, 40)] = rng.integers(1, 256, 40)
        cases.append(a)
    for a in cases:
        a = a.astype(np.uint8)
        expected, _ = cv2.threshold(a, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        assert _otsu(_hist(a)) == int(expected)


@pytest.mark.parametrize("framing", ["mnist", "emnist"])
def test_uint8_canvas_fast_path_equals_the_float_path(mnist, framing):
    """A uint8 RGBA canvas is framed from its alpha's box only (scrawl.vision.ink._ink_from_rgba8); the
    result must be exactly what the same canvas gives as floats in [0, 1], which converts everything."""
    rng = np.random.default_rng(3)
    spec = FrameSpec(framing)
    for i in range(12):
        size = int(rng.integers(60, 300))
        glyph = cv2.resize(mnist[i], (size, size), interpolation=cv2.INTER_LINEAR)
        h, w = size + int(rng.integers(0, 150)), size + int(rng.integers(0, 150))
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[..., :3] = rng.integers(0, 256, 3)  # any pen colour: on a canvas the alpha is the ink
        rgba[y : y + size, x : x + size, 3] = glyph
        as_float = rgba.astype(np.float32) / 255
        assert np.array_equal(frame(rgba, spec), frame(as_float, spec))
        assert np.array_equal(load_image(rgba), load_image(as_float))
        png = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(png, "PNG")
        assert np.array_equal(frame(png.getvalue(), spec), frame(rgba, spec))
