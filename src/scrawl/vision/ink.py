"""The ink map: decode any image a user gives into float32 HxW in [0, 1], 1 = ink, 0 = background.

`load_image(source)` is stage one of the path every image in Scrawl takes (stage two, laying the ink
out like a training set, is `framing.frame`). It decodes PNG, JPEG, BMP, GIF, TIFF, WebP, arrays and PIL
images, applies EXIF orientation and refuses decompression bombs (MAX_PIXELS) before decoding. Then:
polarity is resolved (transparent canvas -> alpha is the ink; otherwise `lighting.flatten` tells the
ink's side and divides out uneven lighting and shadows), contrast is stretched so the ink is 1, and
faint noise is cut.
"""

from __future__ import annotations

import io
import os
import zlib
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError
from . import lighting
from .lighting import CROPPED_CONTRAST, FLATTEN_MIN_SIDE, flatten  # noqa: F401 (FLATTEN_MIN_SIDE: re-export)
from .lighting import hist as _hist, otsu as _otsu, u8 as _u8  # noqa: F401 (_otsu: tests check it)

__all__ = ["MAX_PIXELS", "load_image"]  # InkBox and load_ink are for framing

# Decompression-bomb guard (width * height), checked from the header before any pixel is decoded.
# 40 Mpx admits usual phone photos (12 Mpx JPEGs) and A4 scans at 600 dpi (35 Mpx) while bounding the
# float32 working copies (160 MB each). PIL's own limit (89 Mpx warning, 179 Mpx error) is also caught.
MAX_PIXELS: int = 40_000_000

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
# When the ink is at least MUCH_INK of a map that may be a character cropped to its box (blurred: much
# of it is ink or its rim), the map's median and MAD may be the ink's: the background class's median
# and the noise from Immerkaer's mask are taken instead, if the ink stands at least
# lighting.CROPPED_CONTRAST above that median and they cut less.
MUCH_INK = 0.15
_LEVELS = np.arange(256)
# The chunks a PNG may have for _plain_gray_png: pixels, and facts that do not change them.
_PLAIN_PNG_CHUNKS = {b"IHDR", b"IDAT", b"IEND", b"pHYs", b"tIME"}
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


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
    ink = _decode(source)
    return _ink_from_gray(ink.g8.astype(np.float32) / 255) if isinstance(ink, _Gray8) else ink


class _Gray8(NamedTuple):
    """A uint8 grayscale picture whose ink map is still to be made (_inks_from_gray8: many at once)."""

    g8: np.ndarray


def _decode(source) -> "np.ndarray | InkBox | _Gray8":
    """load_ink's work up to a grayscale picture; its ink map, when it is not one."""
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
    g8 = _plain_gray_png(data)
    if g8 is not None:
        return _ink_from_gray8(g8)
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


def _plain_gray_png(data: bytes) -> np.ndarray | None:
    """The pixels of a plain 8-bit grayscale PNG (a scan, a dataset's digit), decoded by OpenCV: the same
    pixels as Pillow's, in a fifth of the time. None for anything else, which Pillow decodes: other
    modes, transparency, EXIF or text (may hold an orientation), colour or gamma chunks, a header chunk
    with a bad checksum, a truncated or too large file, or pixel data OpenCV cannot decode."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 57:
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[24:26] != b"\x08\x00" or not 0 < width * height <= MAX_PIXELS:  # bit depth 8, colour type 0
        return None
    pos = 8
    while pos + 12 <= len(data):
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind not in _PLAIN_PNG_CHUNKS or end > len(data):
            return None
        if kind != b"IDAT" and zlib.crc32(data[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return None  # Pillow refuses it: so must we
        if kind == b"IEND":
            break
        pos = end
    else:
        return None
    g8 = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return g8 if g8 is not None and g8.dtype == np.uint8 and g8.shape == (height, width) else None


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
        return _ink_from_gray8(np.asarray(im.convert("L")))
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
    if a.dtype == np.uint8 and a.ndim == 2:
        return _ink_from_gray8(a)
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


def _ink_from_gray8(g8: np.ndarray) -> _Gray8:
    """A uint8 grayscale picture: its ink map is _ink_from_gray(g8 / 255), made by load_ink, or for
    many small ones at once by scans.load_ink_many."""
    return _Gray8(np.ascontiguousarray(g8))


def _ink_from_gray(g: np.ndarray) -> np.ndarray:
    """Grayscale in [0, 1], either polarity -> ink map (ink bright)."""
    x, cropped = flatten(g)
    return _normalise(x, _noise_sigma(x) if cropped else None)


def _normalise(x: np.ndarray, noise: float | None = None) -> np.ndarray:
    """Background ~0, ink > 0 -> ink level mapped to 1, faint noise cut to 0 (soft threshold). noise: the
    noise sigma, given when x may be a character cropped to its box (lighting.flatten says)."""
    # Only the bounding box of x > 0 is converted and mapped: outside it every pixel is in bin 0 and
    # maps to 0 (floor > 0), and a drawing usually covers a small part of its canvas.
    bx, by, bw, bh = cv2.boundingRect((x > 0).astype(np.uint8))
    out = np.zeros(x.shape, np.float32)
    if bw and bh:
        out[by : by + bh, bx : bx + bw] = _normalise_roi(x[by : by + bh, bx : bx + bw], x.size, noise)
    return out


def _normalise_roi(roi: np.ndarray, size: int, noise: float | None = None) -> np.ndarray:
    """_normalise inside the box of a map of `size` pixels that are 0 outside it."""
    hist = _hist(_u8(roi))
    hist[0] += size - roi.size
    scale = _ink_scales(hist[None], [noise])[0]
    return np.zeros_like(roi) if scale is None else _stretch(roi, *scale)


def _ink_scales(h: np.ndarray, noises: list) -> list[tuple[float, float] | None]:
    """From the histograms of whole maps (rows of h: u8 levels) and their noise sigmas (or None): for
    each, (the ink level, the noise floor) that _stretch maps to 1 and 0, or None when nothing stands
    out as ink."""
    above = np.where(_LEVELS > lighting.otsu_rows(h)[:, None], h, 0)  # the ink class
    med = lighting.hist_percentiles(h, 50)  # the background's level and noise: median and MAD of the map
    sigmas = 1.4826 * lighting.hist_mads(h, np.rint(med * 255).astype(np.intp))  # MAD from the histogram
    levels = lighting.hist_percentiles(above * _LEVELS, INK_PERCENTILE)  # by contrast: faint rules are not the ink
    meds_bg = lighting.hist_percentiles(h - above, 50)  # the background class's level
    return [_ink_scale_of(h[i], above[i], float(med[i]), float(sigmas[i]), float(levels[i]), float(meds_bg[i]), noise)
            for i, noise in enumerate(noises)]


def _ink_scale_of(h, above, med: float, sigma: float, level: float, med_bg: float, noise: float | None):
    """_ink_scale's decision for one map, from its statistics."""
    if above.sum() == 0:
        return None
    if noise is not None and above.sum() >= MUCH_INK * h.sum():  # those may be the ink's and its rim's
        if level - med_bg >= CROPPED_CONTRAST and med_bg + NOISE_SIGMAS * noise < med + NOISE_SIGMAS * sigma:
            med, sigma = med_bg, noise
    if level - med < max(MIN_CONTRAST, MIN_SNR * sigma):
        return None
    return level, min(0.5, max(FLOAT_DUST, (med + NOISE_SIGMAS * sigma) / level))


def _stretch(x: np.ndarray, level: float, floor: float) -> np.ndarray:
    """The ink level to 1, the noise floor to 0 (soft threshold), clipped."""
    y = (x * np.float32(1 / level) - np.float32(floor)) * np.float32(1 / (1 - floor))
    return np.clip(y, 0, 1)


def _noise_sigma(x: np.ndarray) -> float:
    """Noise sigma of a picture with much structure: the MAD of Immerkaer's mask (J. Immerkaer, "Fast
    noise variance estimation", CVIU 1996), which cancels flat parts, ramps and most of smooth edges."""
    if min(x.shape) < 3:
        return 0.0
    r = np.abs(cv2.filter2D(x, cv2.CV_32F, _IMMERKAER)[1:-1, 1:-1]).ravel()
    return 1.4826 * lighting.median(r) / 6  # the mask's noise gain is 6 (sqrt of 36)
