"""The ink map: decode any image a user gives into float32 HxW in [0, 1], 1 = ink, 0 = background.

`load_image(source)` is stage one of the path every image in Scrawl takes (stage two, laying the ink
out like a training set, is `framing.frame`). It decodes PNG, JPEG, BMP, GIF, TIFF, WebP, arrays and PIL
images, applies EXIF orientation and refuses decompression bombs (MAX_PIXELS) before decoding. Then:
polarity is resolved (transparent canvas -> alpha is the ink; light paper -> inverted), uneven lighting
is divided out, contrast is stretched so the ink is 1, and faint noise is cut.
"""

from __future__ import annotations

import io
import os
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError

__all__ = ["MAX_PIXELS", "load_image"]  # InkBox and load_ink are for framing.frame

# Decompression-bomb guard (width * height), checked from the header before any pixel is decoded.
# 40 Mpx admits usual phone photos (12 Mpx JPEGs) and A4 scans at 600 dpi (35 Mpx) while bounding the
# float32 working copies (160 MB each). PIL's own limit (89 Mpx warning, 179 Mpx error) is also caught.
MAX_PIXELS: int = 40_000_000

# Images smaller than this are taken to have a flat background (no lighting correction): MNIST-size
# inputs are digital, and a 1/3-image kernel on them would be no wider than a stroke.
FLATTEN_MIN_SIDE = 64
# The lighting estimate is computed on a copy whose longer side is this many pixels: shadows and
# vignetting are smooth, so this is plenty, and it keeps the cost flat for 40 Mpx photos.
BG_SIDE = 128
# Closing (dark ink) / opening (light ink) kernel = this fraction of the longer side. Strokes narrower
# than it vanish from the estimate; shadows and vignetting vary on larger scales. A stroke wider than a
# third of the picture is not expected (and BG_MIN_REL limits the damage if it happens).
BG_KERNEL_FRAC = 1 / 3
# If a stroke is wider than the kernel it leaks into the estimate; clamp the paper estimate to at least
# this fraction of the median paper level so such ink still reads as ink (shadows rarely go deeper).
BG_MIN_REL = 0.6
# "Ink level" = this percentile of the pixels above Otsu's threshold: the stroke core, not its
# anti-aliased edges and not a single glare/hot pixel.
INK_PERCENTILE = 90
# Below this contrast (fraction of the paper level, after lighting correction) there is no ink. Photos
# of blank paper (JPEG noise sigma 2-12, gradients, blotchy texture) measured 0.02-0.11; MIN_SNR and the
# speck rules below catch the rest. Light pencil on paper is ~0.3.
MIN_CONTRAST = 0.10
# Ink must also stand this many noise sigmas (1.4826 * MAD of the image) above the background.
MIN_SNR = 5.0
# Values below this many noise sigmas (relative to the ink level) are cut to 0 (soft threshold): removes
# paper grain and JPEG noise; exactly 0 for clean digital images (MNIST: MAD = 0, nothing changes).
NOISE_SIGMAS = 4.0
# ... and never less than this: removes float round-off (1 - g / bg ~ 1e-7 on a flat page).
FLOAT_DUST = 1 / 512
# RGBA with transparency: if more than this fraction is opaque, it is a picture (of paper) with
# transparent margins or a few transparent pixels: composite onto the dominant opaque colour and read
# the luminance. Otherwise it is a canvas drawing (strokes rarely cover half a canvas): alpha is the ink.
OPAQUE_SHEET_FRAC = 0.5


def load_image(source) -> np.ndarray:
    """Decode `source` into an ink map: float32 HxW in [0, 1], 1 = ink, 0 = background.

    source: a path (str / PathLike), encoded bytes (bytes / bytearray / memoryview), a PIL image, or a
    numpy array (HxW gray, HxWx3 RGB, HxWx4 RGBA; uint8, uint16, bool or float in [0, 1]).
    Raises ImageError (empty data, not an image, truncated, zero size, too many pixels, unreadable path).
    An image without ink gives an all-zero map (frame() then raises EmptyImageError).
    """
    ink = load_ink(source)
    return ink.full() if isinstance(ink, InkBox) else ink


class InkBox(NamedTuple):
    """An ink map given as the part that can hold ink: everything outside `box` is 0. Canvas drawings
    cover a small part of their canvas, and framing never needs the empty rest (only its size)."""

    roi: np.ndarray  # float32 (h, w): the ink map inside box
    box: tuple  # (x, y, w, h) of roi in the full map
    shape: tuple  # (H, W) of the full map

    def full(self) -> np.ndarray:
        out = np.zeros(self.shape, np.float32)
        x, y, w, h = self.box
        out[y : y + h, x : x + w] = self.roi
        return out


def load_ink(source) -> "np.ndarray | InkBox":
    """load_image's work: the ink map, or for a canvas drawing just its part that holds ink (framing
    crops the ink anyway, so it takes this instead of the full map)."""
    if isinstance(source, Image.Image):
        return _ink_from_pil(source, "")
    if isinstance(source, np.ndarray):
        return _ink_from_array(source)
    if hasattr(source, "detach") and hasattr(source, "numpy"):  # a torch tensor
        return _ink_from_array(source.detach().cpu().numpy())
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _ink_from_bytes(bytes(source), "")
    if hasattr(source, "read"):  # a binary file object (an upload, an open file)
        try:
            data = source.read()
        except Exception as e:
            raise ImageError(f"cannot read image from {type(source).__name__}: {e}") from None
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError(f"image file object must be opened in binary mode, got {type(data).__name__}")
        return _ink_from_bytes(bytes(data), "")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ImageError(f"image file not found: {path}") from None
        except IsADirectoryError:
            raise ImageError(f"cannot read image {path}: it is a directory") from None
        except OSError as e:
            raise ImageError(f"cannot read image file {path}: {e.strerror or e}") from None
        return _ink_from_bytes(data, f" ({path})")
    raise ImageError(
        f"unsupported image source of type {type(source).__name__}: give a path, bytes, "
        "a PIL image or a numpy array"
    )


def _ink_from_bytes(data: bytes, where: str) -> np.ndarray:
    if not data:
        raise ImageError(f"empty image data{where}: 0 bytes")
    if _header_zero_size(data):
        raise ImageError(f"image has zero width or height{where}")
    try:
        im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:  # warning: if made an error
        raise ImageError(f"image too large{where}: {e}") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"not an image{where}: unrecognised format ({len(data)} bytes; "
            "expected PNG, JPEG, BMP, GIF, TIFF or WebP)"
        ) from None
    except Exception as e:  # corrupt header: PIL raises SyntaxError, ValueError, struct.error ...
        raise ImageError(f"not an image or corrupt header{where}: {e}") from None
    return _ink_from_pil(im, where)


def _header_zero_size(data: bytes) -> bool:
    """PIL refuses 0-sized PNG/GIF as 'unidentified'; recognise them so the message says what is wrong."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big") == 0 or int.from_bytes(data[20:24], "big") == 0
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little") == 0 or int.from_bytes(data[8:10], "little") == 0
    return False


def _check_size(w: int, h: int, where: str) -> None:
    if w <= 0 or h <= 0:
        raise ImageError(f"image has zero width or height{where}: {w}x{h}")
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"image too large{where}: {w}x{h} = {w * h:,} pixels, more than the limit of "
            f"{MAX_PIXELS:,} (refused before decoding: possible decompression bomb)"
        )


def _ink_from_pil(im: Image.Image, where: str) -> np.ndarray:
    _check_size(*im.size, where)  # from the header: nothing is decoded yet
    try:
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)  # animated GIF / multi-page TIFF: first frame
        im.load()
    except Image.DecompressionBombError as e:
        raise ImageError(f"image too large{where}: {e}") from None
    except Exception as e:
        raise ImageError(f"truncated or corrupt image data{where}: {e}") from None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # malformed EXIF: keep the pixels as stored
        pass
    _check_size(*im.size, where)
    try:
        bands = im.getbands()
        if "A" in bands or "a" in bands or "transparency" in im.info:
            rgba = np.asarray(im.convert("RGBA"))
            return _ink_from_rgba8(rgba, lambda: cv2.cvtColor(rgba, cv2.COLOR_RGBA2GRAY).astype(np.float32) / 255)
        if im.mode == "F":  # float TIFF: any range; only the relative levels matter
            a = np.asarray(im, dtype=np.float32)
            if not np.isfinite(a).all():
                raise ImageError(f"float image{where} contains NaN or infinite values")
            lo, hi = float(a.min()), float(a.max())
            if lo < 0 or hi > 1:
                a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
            return _ink_from_array(a)
        if im.mode == "I" or im.mode.startswith("I;16"):
            return _ink_from_array(np.asarray(im))
        return _ink_from_channels(np.asarray(im.convert("L"), dtype=np.float32) / 255, None)
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"cannot convert image{where} (mode {im.mode}): {e}") from None


def _ink_from_array(a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))):
        raise ImageError(
            f"expected an HxW, HxWx3 or HxWx4 image array, got shape {a.shape}"
            + (" (use frame_batch for a stack of images)" if a.ndim == 3 else "")
        )
    _check_size(a.shape[1], a.shape[0], " (array)")
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 4:
        return _ink_from_rgba8(a)
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535
    elif np.issubdtype(a.dtype, np.integer):  # e.g. PIL mode "I"
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise ImageError(f"integer image values must be in 0..255 or 0..65535, got {lo}..{hi}")
        a = a.astype(np.float32) / (255 if hi <= 255 else 65535)
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ImageError("image array contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ImageError(
                f"float image values must be in [0, 1], got {lo:g}..{hi:g} (divide uint8-range data by 255)"
            )
        a = np.clip(a, 0, 1)
    else:
        raise ImageError(f"unsupported image array dtype {a.dtype}")
    if a.ndim == 2:
        return _ink_from_channels(np.ascontiguousarray(a), None)
    if a.shape[2] == 2:
        return _ink_from_channels(np.ascontiguousarray(a[..., 0]), np.ascontiguousarray(a[..., 1]))
    gray = cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY)
    return _ink_from_channels(gray, np.ascontiguousarray(a[..., 3]) if a.shape[2] == 4 else None)


def _ink_from_rgba8(a: np.ndarray, gray=None) -> np.ndarray:
    """The common canvas case, uint8 RGBA: the same result as _ink_from_channels(gray, alpha / 255),
    but the alpha tests run on uint8, the colour channels are converted only if needed (by `gray`, a
    function; default: float RGB to gray), and a drawing's alpha is converted only inside its box."""
    a = np.ascontiguousarray(a)
    alpha8 = cv2.extractChannel(a, 3)
    if gray is None:
        def gray():
            return cv2.cvtColor(a[..., :3].astype(np.float32) / 255, cv2.COLOR_RGB2GRAY)

    # alpha >= 1 - 1e-3 is alpha8 == 255; alpha > 0.5 is alpha8 > 127 (in _ink_from_channels' units).
    if alpha8.min() == 255 or cv2.countNonZero(cv2.compare(alpha8, 127, cv2.CMP_GT)) / alpha8.size > OPAQUE_SHEET_FRAC:
        return _ink_from_channels(gray, alpha8.astype(np.float32) / 255)
    bx, by, bw, bh = cv2.boundingRect(alpha8)  # the ink: alpha > 0
    if not (bw and bh):
        return np.zeros(alpha8.shape, np.float32)
    roi = _normalise_roi(alpha8[by : by + bh, bx : bx + bw].astype(np.float32) / 255, alpha8.size)
    return InkBox(roi, (bx, by, bw, bh), alpha8.shape)


def _ink_from_channels(gray, alpha: np.ndarray | None) -> np.ndarray:
    """gray (or a function that makes it, called only if needed) and alpha, float32 in [0, 1] -> ink map."""
    if alpha is None or alpha.min() >= 1 - 1e-3:  # no transparency anywhere: an ordinary picture
        return _ink_from_gray(gray() if callable(gray) else gray)
    opaque = alpha > 0.5
    if opaque.mean() > OPAQUE_SHEET_FRAC:  # a picture (of paper) with some transparent margins/pixels
        gray = gray() if callable(gray) else gray
        values = gray[opaque][:: max(1, int(opaque.sum()) // 100_000)]
        sheet = np.float32(np.median(values))
        return _ink_from_gray(gray * alpha + sheet * (1 - alpha))
    # A canvas drawing: strokes of any colour on a transparent background; the alpha is the ink.
    return _normalise(alpha)


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def _hist_percentile(hist: np.ndarray, q: float) -> float:
    """q-th percentile (0..100) of uint8 data given its 256-bin histogram, in [0, 1] units."""
    c = np.cumsum(hist)
    return float(np.searchsorted(c, q / 100 * c[-1])) / 255


def _hist(x8: np.ndarray) -> np.ndarray:
    return cv2.calcHist([x8], [0], None, [256], [0, 256]).ravel()


def _otsu(hist: np.ndarray) -> int:
    """Otsu's threshold from a 256-bin histogram: OpenCV's THRESH_OTSU computed on the histogram we
    already have (cv2.threshold would histogram the image again). Same rule as OpenCV's
    getThreshVal_Otsu_8u: the first level with the largest between-class variance, skipping levels
    where either class is (nearly) empty."""
    p = hist.astype(np.float64) / max(float(hist.sum()), 1.0)
    levels = np.arange(256, dtype=np.float64)
    q1 = np.cumsum(p)
    q2 = 1.0 - q1
    mu = float(p @ levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu1 = np.cumsum(p * levels) / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = q1 * q2 * (mu1 - mu2) ** 2
    eps = np.finfo(np.float32).eps
    valid = (np.minimum(q1, q2) >= eps) & (np.maximum(q1, q2) <= 1 - eps)
    sigma = np.where(valid, sigma, 0.0)
    return int(np.argmax(sigma)) if sigma.max() > 0 else 0


def _ink_from_gray(g: np.ndarray) -> np.ndarray:
    """Grayscale in [0, 1], either polarity -> ink map (ink bright)."""
    hist = _hist(_u8(g))
    levels = np.arange(256) / 255
    present = np.flatnonzero(hist)
    lo, hi = levels[present[0]], levels[present[-1]]
    if hi - lo < 2 / 255:  # flat image
        return np.zeros_like(g)
    med = _hist_percentile(hist, 50)
    # Polarity: the ink is on the side of the background level with more deviation mass; noise is
    # symmetric and cancels, sparse ink (a thin line, 0.1% of a canvas) still counts. The background
    # level is a large median filter, so a lighting gradient across a photo doesn't outweigh the ink.
    residual = g - _local_median(g, med)
    dark_mass = float(np.maximum(-residual, 0).sum())
    light_mass = float(np.maximum(residual, 0).sum())
    if dark_mass > light_mass:  # background is the light side: dark ink on paper
        bg = _background(g, med, light=True)
        x = 1 - g / np.maximum(bg, max(BG_MIN_REL * med, 1 / 255))  # divide out the lighting
    else:  # dark background, bright ink (MNIST style, chalk, screens)
        bg = _background(g, med, light=False)
        x = g - np.minimum(bg, med + 0.25 * (hi - med))
    return _normalise(np.clip(x, 0, 1).astype(np.float32))


def _local_median(g: np.ndarray, med: float):
    """Polarity-agnostic background level: a median filter a third of the image wide (at 128 px)."""
    h, w = g.shape
    if min(h, w) < FLATTEN_MIN_SIDE:
        return np.float32(med)
    s = BG_SIDE / max(h, w)
    small = cv2.resize(_u8(g), (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    k = max(3, int(BG_KERNEL_FRAC * BG_SIDE) | 1)
    small = cv2.medianBlur(small, k)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255


def _background(g: np.ndarray, med: float, light: bool):
    """Large-scale background (paper + lighting) without the ink; a scalar for small images."""
    h, w = g.shape
    if min(h, w) < FLATTEN_MIN_SIDE:
        return np.float32(med)
    s = BG_SIDE / max(h, w)
    small = cv2.resize(g, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    k = max(3, int(BG_KERNEL_FRAC * BG_SIDE) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    small = cv2.morphologyEx(small, cv2.MORPH_CLOSE if light else cv2.MORPH_OPEN, kernel)
    small = cv2.GaussianBlur(small, (0, 0), k / 4)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _normalise(x: np.ndarray) -> np.ndarray:
    """Background ~0, ink > 0 -> ink level mapped to 1, faint noise cut to 0 (soft threshold)."""
    # Only the bounding box of x > 0 is converted and mapped: outside it every pixel is in bin 0 and
    # maps to 0 (floor > 0), and a drawing usually covers a small part of its canvas.
    bx, by, bw, bh = cv2.boundingRect((x > 0).astype(np.uint8))
    out = np.zeros(x.shape, np.float32)
    if bw and bh:
        out[by : by + bh, bx : bx + bw] = _normalise_roi(x[by : by + bh, bx : bx + bw], x.size)
    return out


def _normalise_roi(roi: np.ndarray, size: int) -> np.ndarray:
    """_normalise inside the box of a map of `size` pixels that are 0 outside it."""
    hist = _hist(_u8(roi))
    hist[0] += size - roi.size
    med = _hist_percentile(hist, 50)
    dev = np.abs(np.arange(256) / 255 - med)  # MAD from the histogram
    order = np.argsort(dev, kind="stable")
    c = np.cumsum(hist[order])
    sigma = 1.4826 * float(dev[order][np.searchsorted(c, 0.5 * c[-1])])
    otsu = _otsu(hist)
    above = hist.copy()
    above[: int(otsu) + 1] = 0
    if above.sum() == 0:
        return np.zeros_like(roi)
    level = _hist_percentile(above, INK_PERCENTILE)
    if level - med < max(MIN_CONTRAST, MIN_SNR * sigma):
        return np.zeros_like(roi)
    floor = min(0.5, max(FLOAT_DUST, (med + NOISE_SIGMAS * sigma) / level))
    y = (roi * np.float32(1 / level) - np.float32(floor)) * np.float32(1 / (1 - floor))
    return np.clip(y, 0, 1)
