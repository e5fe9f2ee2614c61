"""Framing: lay a user's ink out exactly the way a model's training data was made, and make model input.

One path for everyone: the CLI, the Python API, the web app and evaluation on foreign datasets all call
`frame()` (or `frame_batch()` for a stack of dataset images, `scans.frame_many()` for a folder's files,
the same steps arranged for many small scans), so a photo, a scan, a canvas drawing and an MNIST digit
all reach the model through the same steps: `ink.load_image` makes the ink map, then
`frame(image, spec)` crops the ink and lays it out like the training set (`FrameSpec.framing`):

- "mnist": LeCun's recipe (yann.lecun.com/exdb/mnist): "normalized to fit in a 20x20 pixel box while
  preserving their aspect ratio ... centered in a 28x28 image by computing the center of mass of the
  pixels, and translating the image so as to position this point at the center of the 28x28 field."
- "emnist": Cohen et al. 2017, "EMNIST: an extension of MNIST to handwritten letters", section II-A:
  Gaussian blur (sigma = 1) of the 128x128 NIST image, crop the region of interest, centre it in a
  square keeping the aspect ratio, pad by 2 pixels, downsample to 28x28 with bicubic interpolation,
  scale intensities to the full range. Output is upright (EMNIST's files store images transposed;
  that is the dataset loader's business, not this module's).
- "line": a line of handwriting for a line model (CNN + CTC): the ink's box scaled to `box` px high
  (aspect kept) in a `size`-px-high image of any width, centred, with LINE_MARGIN blank columns each
  side: how scrawl.data.strokes renders the training lines (their ink spans 65-95% of the height).

Both framings thicken strokes that would come out far thinner than the training set's (a thin pen on
a big canvas), because a hair-thin digit is out of distribution for every model trained on MNIST.

Output of `frame` / `frame_batch`: float32 in [0, 1], ink bright. `to_input` is the one conversion of
images (framed, or a dataset's uint8) into what every model takes: (N, 1, H, W) float32 in [0, 1].
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from PIL import Image

from ..errors import EmptyImageError, ImageError
from .ink import InkBox, load_ink
from .skew import level_crop

__all__ = ["FRAMINGS", "FrameSpec", "LineFrame", "frame", "frame_batch", "frame_line", "line_spec", "to_input"]

FRAMINGS = ("mnist", "emnist", "line")


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
# (INTER_AREA): the centre-of-mass shift gets 1/4 px precision without an interpolation blur. 4, not 8
# (issue 14): re-framed MNIST stays as close to the original and the models read the same, in a
# quarter of the pixels (benchmarks/framing_grid.py).
OVERSAMPLE = 4
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
# Line framing: the ink's box spans LINE_FILL of the height (the middle of the training renders' 0.65-0.95),
# LINE_MARGIN * height blank columns each side (render_strokes' margin). A line keeps components down to
# LINE_SPECK_REL of its largest (a period or an i's dot beside a long cursive word is 0.5-2% of it).
LINE_FILL = 0.8
LINE_MARGIN = 0.1
# Lines are widened by this factor (the height kept): a long line of handwriting at 32 px has about 7 px
# per character, under 2 of the CRNN's 4-px frames, too few for CTC to separate them reliably; 1.25 gives
# 2+ frames. The training lines are widened the same way (scrawl.training.lines).
LINE_STRETCH = 1.25
LINE_SPECK_REL = 0.004
# A framed line is at most this wide (px at the model's height): 4,096 px at 32 px high is about 150
# handwritten characters, far more than a line of a page holds. Wider: an error that says so.
MAX_LINE_WIDTH = 4096

_HALO_KERNEL = np.ones((2 * HALO + 1, 2 * HALO + 1), np.uint8)
# Pixel centres (i + 0.5) for the centre of mass (any work grid: box * OVERSAMPLE), sliced, not made per image.
_CENTRES = np.arange(1024 * OVERSAMPLE) + 0.5


@dataclass(frozen=True)
class FrameSpec:
    """How ink is laid out in the model's input; stored inside checkpoints (to_dict / from_dict)."""

    framing: str = "mnist"  # "mnist" (box + centre of mass), "emnist" (blur, box-centred, 2 px pad) or "line"
    size: int = 28  # output side in pixels (line: the height; the width follows the ink)
    box: int = 20  # mnist: ink fitted into box x box, keeping the aspect ratio (LeCun: 20); line: the ink's height

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


def line_spec(height: int = 32) -> FrameSpec:
    """The line framing for a model `height` px high."""
    return FrameSpec(framing="line", size=height, box=int(round(LINE_FILL * height)))


def frame(image, spec: FrameSpec = FrameSpec()) -> np.ndarray:
    """Any image load_image accepts (or an ink map) -> float32 (spec.size, spec.size), ink bright; for a
    line spec (spec.size, W) with W following the ink's aspect ratio.

    Always re-frames, even a 28x28 input, so foreign framings are normalised.
    Raises EmptyImageError when there is no ink, ImageError when the image cannot be read.
    """
    return _frame_ink(load_ink(image), spec)


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
    if spec.framing == "line":
        raise ImageError("frame_batch frames single characters; frame lines one at a time with frame()")
    out = np.zeros((a.shape[0], spec.size, spec.size), np.float32)
    for i in range(a.shape[0]):
        try:
            out[i] = _frame_ink(a[i].astype(np.float32) * scale, spec)
        except EmptyImageError:
            pass
    return out


def to_input(images):
    """Images -> what every model takes: (N, 1, H, W) float32 in [0, 1], ink bright.

    images: (H, W), (N, H, W) or (N, 1, H, W); uint8 (divided by 255), float in [0, 1] or bool; a torch
    tensor, or a numpy array (or anything np.asarray takes). A tensor gives a tensor on its own device
    (uint8 as `x.float().div_(255)`, the training loop's numbers); anything else gives a C-contiguous
    numpy array, without importing torch. Input that already fits is returned as is, not copied.
    Raises ValueError for any other shape or dtype.
    """
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    is_tensor = torch is not None and isinstance(images, torch.Tensor)
    x = images if is_tensor else np.asarray(images)
    shape = tuple(x.shape)
    if len(shape) == 2:
        x = x[None, None]
    elif len(shape) == 3:
        x = x[:, None]
    elif len(shape) != 4 or shape[1] != 1:
        raise ValueError(f"expected images (H, W), (N, H, W) or (N, 1, H, W), got shape {shape}")
    if is_tensor:
        if x.dtype == torch.uint8:
            return x.float().div_(255)
        if x.is_floating_point() or x.dtype == torch.bool:
            return x.float()
    elif x.dtype == np.uint8:
        return np.ascontiguousarray(x, dtype=np.float32) / np.float32(255)
    elif np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_:
        return np.ascontiguousarray(x, dtype=np.float32)
    raise ValueError(f"expected uint8 images or float images in [0, 1], got dtype {x.dtype} (shape {shape})")


@dataclass
class LineFrame:
    """A framed line and where it came from: framed column c lies over input column `input_x(c)`."""
    image: np.ndarray  # float32 (size, W), ink bright
    x0: int  # the ink's left edge (in the levelled crop's canvas when the line was turned)
    y0: int  # the ink's top edge, likewise
    scale: float  # framed columns per canvas column (LINE_STRETCH included)
    margin: int  # blank framed columns left of the ink
    skew: float = 0.0  # degrees the line was turned to level it (vision.skew; y down, > 0: right end low)
    to_input: tuple = (1.0, 0.0)  # (a, b): input column = a * canvas column + b, on the line's middle row

    def input_x(self, column: float) -> float:
        return self.to_input[0] * ((column - self.margin) / self.scale + self.x0) + self.to_input[1]


def frame_line(ink: np.ndarray, spec: FrameSpec, full_shape: tuple | None = None) -> LineFrame:
    """One line's ink map (float, ink bright) -> LineFrame, levelled (vision.skew); EmptyImageError without ink
    (or only specks, judged against `full_shape`: the whole image's (H, W) the line was cut from),
    ImageError for a line too long to read in one piece."""
    if spec.framing != "line":
        raise ValueError(f"frame_line needs a line spec, got {spec.framing!r}")
    origin = [0, 0]
    crop = _clean_crop(np.asarray(ink, np.float32), full_shape or np.shape(ink), LINE_SPECK_REL, origin)
    crop, skew, to_input = level_crop(crop, BBOX_LEVEL, origin)
    return LineFrame(_frame_line(crop, spec), origin[0], origin[1], spec.box / crop.shape[0] * LINE_STRETCH,
                     int(round(LINE_MARGIN * spec.size)), skew, to_input)


def _frame_ink(ink: "np.ndarray | InkBox", spec: FrameSpec) -> np.ndarray:
    speck = LINE_SPECK_REL if spec.framing == "line" else SPECK_REL
    crop = (_clean_crop(ink.roi, ink.shape, speck) if isinstance(ink, InkBox) else _clean_crop(ink, ink.shape, speck))
    if spec.framing == "line":
        return _frame_line(level_crop(crop, BBOX_LEVEL)[0], spec)
    if spec.framing == "mnist":
        return _frame_mnist(crop, spec)
    return _frame_emnist(crop, spec)


def _clean_crop(ink: np.ndarray, full_shape: tuple, speck_rel: float = SPECK_REL, origin: list | None = None) -> np.ndarray:
    """Drop specks and faint stray ink, refuse empty images, crop to the ink's bounding box.
    ink: the ink map, or the part of it outside which it is 0; full_shape: the whole map's (H, W).
    origin: if given, receives the crop's top-left corner (x, y) in `ink`."""
    # Work inside the bounding box of all ink, widened by the halo: nothing outside it can change the
    # result, and a drawing usually covers a small part of its canvas.
    bx, by, bw, bh = cv2.boundingRect((ink > 0).astype(np.uint8))
    x0 = y0 = 0
    if bw and bh:
        x0, y0 = max(0, bx - HALO - 1), max(0, by - HALO - 1)
        ink = ink[y0 : by + bh + HALO + 1, x0 : bx + bw + HALO + 1]
    core = (ink > INK_LEVEL).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if n <= 1:
        raise EmptyImageError("no ink found: the image is blank (nothing stands out from the background)")
    if n == 2:  # one component (most characters): the same numbers, fewer calls
        keep = None
        total = int(stats[1, cv2.CC_STAT_AREA])
        extent = int(max(stats[1, cv2.CC_STAT_WIDTH], stats[1, cv2.CC_STAT_HEIGHT]))
    else:
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = areas >= speck_rel * areas.max()
        total = int(areas[keep].sum())
        extent = int(np.max(stats[1:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]][keep]))
    if total < MIN_INK_PIXELS or extent < max(2, MIN_INK_EXTENT * min(full_shape)):
        raise EmptyImageError(
            f"no ink found: only specks ({total} ink pixel(s), at most {extent} px across) in a "
            f"{full_shape[1]}x{full_shape[0]} image"
        )
    if keep is not None and not keep.all():
        core = np.concatenate([[0], keep]).astype(np.uint8)[labels]
    near = cv2.dilate(core, _HALO_KERNEL)
    x, y, w, h = cv2.boundingRect(near)
    crop = ink[y : y + h, x : x + w] * near[y : y + h, x : x + w]
    x0, y0 = x0 + x, y0 + y
    x, y, w, h = cv2.boundingRect((crop > BBOX_LEVEL).astype(np.uint8))
    if origin is not None:
        origin[:] = [x0 + x, y0 + y]
    return np.ascontiguousarray(crop[y : y + h, x : x + w], dtype=np.float32)


def _frame_line(crop: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """A cropped line -> (size, W) float32: ink `box` px high, centred, LINE_MARGIN each side, the
    brightest ink at 1 (a faint pencil line reads like the rendered training lines)."""
    h, w = crop.shape
    s = spec.box / h
    nw = max(1, int(round(w * s * LINE_STRETCH)))
    out_w = nw + 2 * int(round(LINE_MARGIN * spec.size))
    if out_w > MAX_LINE_WIDTH:
        raise ImageError(f"the line is too long to read in one piece: {w}x{h} px of ink would be {out_w} px wide "
                         f"at the model's height (at most {MAX_LINE_WIDTH}: about {MAX_LINE_WIDTH // spec.size} "
                         "times as wide as high); split it into shorter lines")
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    line = np.clip(cv2.resize(crop, (nw, spec.box), interpolation=interp), 0, 1)
    top = float(line.max())
    if 0 < top < 1:
        line /= top
    out = np.zeros((spec.size, out_w), np.float32)
    y0, x0 = (spec.size - spec.box) // 2, int(round(LINE_MARGIN * spec.size))
    out[y0 : y0 + spec.box, x0 : x0 + nw] = line
    return out


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
        crop = np.clip(crop, 0, 1, out=crop)
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
    cy = float(work.sum(1) @ _CENTRES[:h]) / mass
    cx = float(work.sum(0) @ _CENTRES[:w]) / mass
    # MNIST's centre of mass sits at pixel index size/2 (14.0 for 28; measured: 13.99 / 14.00), i.e.
    # at continuous coordinate size/2 + 0.5 with pixel i covering [i, i+1).
    centre = (spec.size / 2 + 0.5) * f
    oy = min(max(round(centre - cy), 0), side - h)  # shift back if the box would leave the frame
    ox = min(max(round(centre - cx), 0), side - w)
    canvas = np.zeros((side, side), np.float32)
    canvas[oy : oy + h, ox : ox + w] = work
    out = cv2.resize(canvas, (spec.size, spec.size), interpolation=cv2.INTER_AREA)
    return np.clip(out, 0, 1, out=out)


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
