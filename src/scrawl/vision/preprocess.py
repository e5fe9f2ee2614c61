"""Turn any image a user gives into model input, exactly the way the training data was made.

One path for everyone: the CLI, the Python API, the web app and evaluation on foreign datasets all call
`frame()` (or `frame_batch()` for a stack of dataset images), so a photo, a scan, a canvas drawing and an
MNIST digit all reach the model through the same steps.

Two stages:

1. `load_image(source)` decodes (PNG, JPEG, BMP, GIF, TIFF, WebP, arrays, PIL images), applies EXIF
   orientation, and returns an *ink map*: float32 HxW in [0, 1], 1 = ink, 0 = background. Polarity is
   resolved (transparent canvas -> alpha is the ink; light paper -> inverted), uneven lighting is divided
   out, contrast is stretched so the ink is 1, and faint noise is cut.
2. `frame(image, spec)` crops the ink and lays it out like the training set:
   - "mnist": LeCun's recipe (yann.lecun.com/exdb/mnist): "normalized to fit in a 20x20 pixel box while
     preserving their aspect ratio ... centered in a 28x28 image by computing the center of mass of the
     pixels, and translating the image so as to position this point at the center of the 28x28 field."
   - "emnist": Cohen et al. 2017, "EMNIST: an extension of MNIST to handwritten letters", section II-A:
     Gaussian blur (sigma = 1) of the 128x128 NIST image, crop the region of interest, centre it in a
     square keeping the aspect ratio, pad by 2 pixels, downsample to 28x28 with bicubic interpolation,
     scale intensities to the full range. Output is upright (EMNIST's files store images transposed;
     that is the dataset loader's business, not this module's).
   Both framings thicken strokes that would come out far thinner than the training set's (a thin pen on
   a big canvas), because a hair-thin digit is out of distribution for every model trained on MNIST.

Output of `frame` / `frame_batch`: float32 in [0, 1], ink bright; `to_tensor` adds the channel axis.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import EmptyImageError, ImageError

__all__ = ["FrameSpec", "MAX_PIXELS", "load_image", "frame", "frame_batch", "to_tensor"]

# Decompression-bomb guard (width * height), checked from the header before any pixel is decoded.
# 40 Mpx admits usual phone photos (12 Mpx JPEGs) and A4 scans at 600 dpi (35 Mpx) while bounding the
# float32 working copies (160 MB each). PIL's own limit (89 Mpx warning, 179 Mpx error) is also caught.
MAX_PIXELS: int = 40_000_000

FRAMINGS = ("mnist", "emnist")

# --- ink map (load_image) ---------------------------------------------------------------------------
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

# --- framing -----------------------------------------------------------------------------------------
# A pixel with ink > INK_LEVEL is "core" ink: used for components, emptiness and stroke width.
INK_LEVEL = 0.5
# Connected core components smaller than this fraction of the largest are specks (dust, noise) and are
# dropped before cropping, so a speck in a photo's corner cannot blow up the bounding box. Estimate: the
# dot of an "i" drawn with a 3 px pen on a 280 px canvas is ~4% of the stem (kept).
SPECK_REL = 0.02
# No ink when no kept component spans at least this fraction of the image's shorter side (a few noise
# specks: 2x2 px on a 280 px canvas), or when fewer than MIN_INK_PIXELS core pixels remain. Linear,
# not an area fraction, so a thin-pen digit on a 12 Mpx photo (a small area) is still ink.
MIN_INK_EXTENT = 0.03
MIN_INK_PIXELS = 4
# Faint ink farther than this (pixels, Chebyshev) from any core pixel is dropped: anti-aliasing halos
# are 1-2 px, so this keeps MNIST's edges while removing faint noise away from the strokes.
HALO = 2
# The crop is the bounding box of ink above this level: faint rims (JPEG ringing, LINE_AA tails, a
# blurry low-res source) do not widen it. Measured: re-framed MNIST is unchanged from 0 to 0.3;
# EMNIST re-framing is best at 0.05-0.1 (median corr 0.976 at 0 -> 0.983); a 28x28 digit shrunk into a
# corner is re-framed best at >= 0.1 (corr 0.83 at 0 -> 0.98).
BBOX_LEVEL = 0.1
# MNIST framing is done on a grid OVERSAMPLE times finer than the output, then block-averaged
# (INTER_AREA): the centre-of-mass shift gets 1/8 px precision without an interpolation blur.
OVERSAMPLE = 8
# Interpolation for enlarging a small crop to the working grid: bicubic is sharper than bilinear
# (re-framed MNIST: mean abs difference to the original 0.029 vs 0.032); the result is clipped to [0, 1].
_ENLARGE = cv2.INTER_CUBIC
# Stroke width (core area / half the core perimeter, in output pixels) measured on real digits, see
# tests/test_preprocess.py::test_stroke_width_constants_match_real_data. MNIST test set: 1st pct 1.19,
# 5th 1.45, median 2.18; EMNIST-MNIST test set: 1st pct 1.59, 5th 1.88, median 2.73.
# Ink that would come out thinner is thickened (dilated before shrinking) to the soft maximum
# (w**p + floor**p) ** (1/p): a hair-thin pen (w -> 0) becomes `floor` (MNIST: 2.0 px, ~35th pct),
# thick ink is untouched (augmentation covers it). Soft, not a hard threshold, so two nearly equal
# inputs never frame to visibly different widths. Re-framing MNIST moves its 5th percentile from 1.34 to
# 1.78 px and leaves the 25th percentile and up unchanged (dilations under half a working pixel are no-ops).
STROKE = {"mnist": (2.0, 10), "emnist": (2.5, 10)}  # (floor in output px, p)
# Thickening by less than this (output px) is skipped: invisible, and it saves the distance transform.
STROKE_MIN_GAIN = 0.05
# EMNIST: blur (sigma 1) on a frame of this side, i.e. the 128x128 NIST scale of Cohen et al.
EMNIST_SCALE = 128
EMNIST_SIGMA = 1.0
# "The region of interest is padded with a 2 pixel border" (Cohen et al.); measured on EMNIST-MNIST
# test images: the ink's long side spans 24 px at level > 0.1 (26 at > 0), i.e. 2 px each side.
EMNIST_PAD = 2
# The ROI after the blur = pixels above this level (drops the far Gaussian tails).
EMNIST_ROI_LEVEL = 0.05


@dataclass(frozen=True)
class FrameSpec:
    """How ink is laid out in the model's input; stored inside checkpoints (to_dict / from_dict)."""

    framing: str = "mnist"  # "mnist" (box + centre of mass) or "emnist" (blur, box-centred, 2 px pad)
    size: int = 28  # output side in pixels
    box: int = 20  # mnist framing: ink fitted into box x box, keeping the aspect ratio (LeCun: 20)

    def __post_init__(self):
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}: expected one of {', '.join(FRAMINGS)}")
        for name in ("size", "box"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"FrameSpec.{name} must be an integer, got {value!r}")
        if not 8 <= self.size <= 1024:
            raise ValueError(f"FrameSpec.size must be in 8..1024, got {self.size}")
        if not 4 <= self.box <= self.size:
            raise ValueError(f"FrameSpec.box must be in 4..size ({self.size}), got {self.box}")
        if self.framing == "emnist" and self.size <= 2 * EMNIST_PAD + 4:
            raise ValueError(f"FrameSpec.size {self.size} is too small for emnist framing")

    def to_dict(self) -> dict:
        return {"framing": self.framing, "size": int(self.size), "box": int(self.box)}

    @classmethod
    def from_dict(cls, d: dict) -> "FrameSpec":
        if not isinstance(d, dict):
            raise ValueError(f"FrameSpec.from_dict expects a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - set(asdict(cls())))
        if unknown:
            raise ValueError(f"unknown FrameSpec field(s) {unknown}: written by a newer Scrawl?")
        return cls(**d)


# ===================================================================================== load_image ====


def load_image(source) -> np.ndarray:
    """Decode `source` into an ink map: float32 HxW in [0, 1], 1 = ink, 0 = background.

    source: a path (str / PathLike), encoded bytes (bytes / bytearray / memoryview), a PIL image, or a
    numpy array (HxW gray, HxWx3 RGB, HxWx4 RGBA; uint8, uint16, bool or float in [0, 1]).
    Raises ImageError (empty data, not an image, truncated, zero size, too many pixels, unreadable path).
    An image without ink gives an all-zero map (frame() then raises EmptyImageError).
    """
    ink = _load_ink(source)
    return ink.full() if isinstance(ink, _InkBox) else ink


class _InkBox(NamedTuple):
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


def _load_ink(source) -> "np.ndarray | _InkBox":
    """load_image's work: the ink map, or for a canvas drawing just its part that holds ink."""
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
    return _InkBox(roi, (bx, by, bw, bh), alpha8.shape)


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


# ========================================================================================== frame ====


def frame(image, spec: FrameSpec = FrameSpec()) -> np.ndarray:
    """Any image load_image accepts (or an ink map) -> float32 (spec.size, spec.size), ink bright.

    Always re-frames, even a 28x28 input, so foreign framings are normalised.
    Raises EmptyImageError when there is no ink, ImageError when the image cannot be read.
    """
    return _frame_ink(_load_ink(image), spec)


def frame_batch(images, spec: FrameSpec = FrameSpec()) -> np.ndarray:
    """(N, H, W) ink-bright images (uint8, or float in [0, 1]) -> (N, size, size) float32.

    For datasets: no polarity or contrast step, so the images must already be ink bright (invert
    LEAF/FEMNIST's dark-on-white arrays first) and upright (EMNIST's files are stored transposed).
    Images with no ink become all zeros instead of raising.
    """
    a = np.asarray(images)
    if a.ndim != 3:
        raise ImageError(f"frame_batch expects an (N, H, W) array of ink-bright images, got shape {a.shape}")
    if a.dtype == np.uint8:
        scale = np.float32(1 / 255)
    elif np.issubdtype(a.dtype, np.floating):
        if a.size and (not np.isfinite(a).all() or a.min() < 0 or a.max() > 1):
            raise ImageError("frame_batch: float images must be finite and in [0, 1]")
        scale = np.float32(1)
    else:
        raise ImageError(f"frame_batch: unsupported dtype {a.dtype} (use uint8 or float in [0, 1])")
    out = np.zeros((a.shape[0], spec.size, spec.size), np.float32)
    for i in range(a.shape[0]):
        try:
            out[i] = _frame_ink(a[i].astype(np.float32) * scale, spec)
        except EmptyImageError:
            pass
    return out


def to_tensor(framed):
    """(H, W) or (N, H, W) float32 array -> (N, 1, H, W) torch.float32 tensor."""
    import torch

    a = np.asarray(framed, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"to_tensor expects (H, W) or (N, H, W), got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(1)


def _frame_ink(ink: "np.ndarray | _InkBox", spec: FrameSpec) -> np.ndarray:
    crop = _clean_crop(ink.roi, ink.shape) if isinstance(ink, _InkBox) else _clean_crop(ink, ink.shape)
    if spec.framing == "mnist":
        return _frame_mnist(crop, spec)
    return _frame_emnist(crop, spec)


def _clean_crop(ink: np.ndarray, full_shape: tuple) -> np.ndarray:
    """Drop specks and faint stray ink, refuse empty images, crop to the ink's bounding box.
    ink: the ink map, or the part of it outside which it is 0; full_shape: the whole map's (H, W)."""
    # Work inside the bounding box of all ink, widened by the halo: nothing outside it can change the
    # result, and a drawing usually covers a small part of its canvas.
    bx, by, bw, bh = cv2.boundingRect((ink > 0).astype(np.uint8))
    if bw and bh:
        x0, y0 = max(0, bx - HALO - 1), max(0, by - HALO - 1)
        ink = ink[y0 : by + bh + HALO + 1, x0 : bx + bw + HALO + 1]
    core = (ink > INK_LEVEL).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if n <= 1:
        raise EmptyImageError("no ink found: the image is blank (nothing stands out from the background)")
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = areas >= SPECK_REL * areas.max()
    total = int(areas[keep].sum())
    extent = int(np.max(stats[1:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]][keep]))
    if total < MIN_INK_PIXELS or extent < max(2, MIN_INK_EXTENT * min(full_shape)):
        raise EmptyImageError(
            f"no ink found: only specks ({total} ink pixel(s), at most {extent} px across) in a "
            f"{full_shape[1]}x{full_shape[0]} image"
        )
    if not keep.all():
        core = np.concatenate([[0], keep]).astype(np.uint8)[labels]
    near = cv2.dilate(core, np.ones((2 * HALO + 1, 2 * HALO + 1), np.uint8))
    x, y, w, h = cv2.boundingRect(near)
    crop = ink[y : y + h, x : x + w] * near[y : y + h, x : x + w]
    x, y, w, h = cv2.boundingRect((crop > BBOX_LEVEL).astype(np.uint8))
    return np.ascontiguousarray(crop[y : y + h, x : x + w], dtype=np.float32)


def _stroke_width(ink: np.ndarray) -> float:
    """Stroke width in pixels: core area / half the core perimeter (= width for long strokes)."""
    core = (ink > INK_LEVEL).astype(np.uint8)
    area = cv2.countNonZero(core)
    contours, _ = cv2.findContours(core, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    half_perimeter = sum(cv2.arcLength(c, True) for c in contours) / 2
    return area / max(half_perimeter, 1.0)


def _fit(crop: np.ndarray, long_side: int, long_final: float, floor: float, p: float) -> np.ndarray:
    """Resize so the longer side is `long_side` px (it becomes `long_final` output px); before
    shrinking, thicken strokes that would come out thinner than STROKE's soft floor."""
    h, w = crop.shape
    if max(h, w) < long_side:  # enlarge tiny ink first, so strokes are measured at working resolution
        s = long_side / max(h, w)
        crop = cv2.resize(crop, (max(1, round(w * s)), max(1, round(h * s))), interpolation=_ENLARGE)
        crop = np.clip(crop, 0, 1)
        h, w = crop.shape
    length = max(h, w)
    width = _stroke_width(crop)
    now = width * long_final / length  # stroke width in output pixels
    want = (now**p + floor**p) ** (1 / p)
    if want - now > STROKE_MIN_GAIN:
        # Dilate by r so that (width + 2r) / (length + 2r) * long_final == want (the box grows too).
        t = want / long_final
        r = max(0.0, (t * length - width) / (1 - t) / 2)
        pad = int(math.ceil(r)) + 1
        crop = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        dist = cv2.distanceTransform((crop <= INK_LEVEL).astype(np.uint8), cv2.DIST_L2, 5)
        # Pixels within r of the core become ink, with an anti-aliased edge; the core keeps its values.
        crop = np.where(dist > 0, np.maximum(crop, np.clip(r + 0.5 - dist, 0, 1)), crop)
        x, y, w, h = cv2.boundingRect((crop > 0).astype(np.uint8))
        crop = crop[y : y + h, x : x + w]
        length = max(h, w)
    if length != long_side:
        s = long_side / length
        size = (max(1, round(w * s)), max(1, round(h * s)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return crop


def _frame_mnist(crop: np.ndarray, spec: FrameSpec) -> np.ndarray:
    f = OVERSAMPLE
    work = _fit(crop, spec.box * f, spec.box, *STROKE["mnist"])
    h, w = work.shape
    side = spec.size * f
    mass = float(work.sum())
    cy = float(work.sum(1) @ (np.arange(h) + 0.5)) / mass
    cx = float(work.sum(0) @ (np.arange(w) + 0.5)) / mass
    # MNIST's centre of mass sits at pixel index size/2 (14.0 for 28; measured: 13.99 / 14.00), i.e.
    # at continuous coordinate size/2 + 0.5 with pixel i covering [i, i+1).
    centre = (spec.size / 2 + 0.5) * f
    oy = min(max(round(centre - cy), 0), side - h)  # shift back if the box would leave the frame
    ox = min(max(round(centre - cx), 0), side - w)
    canvas = np.zeros((side, side), np.float32)
    canvas[oy : oy + h, ox : ox + w] = work
    out = cv2.resize(canvas, (spec.size, spec.size), interpolation=cv2.INTER_AREA)
    return np.clip(out, 0, 1)


def _frame_emnist(crop: np.ndarray, spec: FrameSpec) -> np.ndarray:
    inner = spec.size - 2 * EMNIST_PAD  # output px the ROI's longer side spans
    roi = round(EMNIST_SCALE * inner / spec.size)
    work = _fit(crop, roi, inner, *STROKE["emnist"])
    b = int(math.ceil(3 * EMNIST_SIGMA)) + 1
    work = cv2.copyMakeBorder(work, b, b, b, b, cv2.BORDER_CONSTANT, value=0)
    work = cv2.GaussianBlur(work, (0, 0), EMNIST_SIGMA)
    x, y, w, h = cv2.boundingRect((work > EMNIST_ROI_LEVEL * work.max()).astype(np.uint8))
    work = work[y : y + h, x : x + w]
    side = max(round(max(h, w) * spec.size / inner), max(h, w) + 2)
    canvas = np.zeros((side, side), np.float32)
    oy, ox = (side - h) // 2, (side - w) // 2  # centre of the box, not centre of mass
    canvas[oy : oy + h, ox : ox + w] = work
    # Bicubic with anti-aliasing (PIL widens the kernel when shrinking, like MATLAB's imresize).
    small = Image.fromarray(canvas).resize((spec.size, spec.size), Image.Resampling.BICUBIC)
    out = np.clip(np.asarray(small, dtype=np.float32), 0, None)
    peak = out.max()
    return (out / peak).astype(np.float32) if peak > 0 else out
