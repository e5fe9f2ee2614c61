"""Reading lines of handwriting with a line model (task "ctc"): image -> ink map -> lines -> framed
lines -> logits -> text with confidences, per-character boxes and the n-best alternatives.

`read_image(recognizer, image, ...)` is what `Recognizer.read`, `scrawl read` and `POST /api/read`
call. A charset restricts the answer: `digits` reads digits (and the spaces between groups), never a
letter or a mark; `number` digits and the marks numbers are written with (12/05, 3.50, +1 555-0100); a
charset of letters keeps the space and every mark, since words are written with them (don't, "Hi!").
A lexicon (scrawl.tasks.lexicon) re-ranks the n-best by word frequency, re-spells words the model and the
prior together prefer spelled otherwise, and never changes a number.
Boxes come from the CTC alignment: a character spans the columns from the frame it was read in to the
next character's, narrowed to the ink there, and the rows of that ink; they are approximate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EmptyImageError, ScrawlError
from ..labels import CHARSETS, charset_indices
from ..settings import TOP_K, UNCERTAIN_BELOW
from ..tasks.ctc import LineAnswer, align, beam_search, greedy, log_softmax, text_logprob
from ..vision.framing import frame_line
from ..vision.ink import load_image
from ..vision.lines import MAX_LINES, split_lines

STRIDE = 4  # input columns per CTC frame (scrawl.models.crnn)
BEAM = 8  # texts the beam keeps per line (at least top_k)


@dataclass
class CharReading:
    char: str
    confidence: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the image (approximate)

    def to_dict(self) -> dict:
        return {"char": self.char, "confidence": round(self.confidence, 6), "box": list(self.box),
                "uncertain": self.confidence < UNCERTAIN_BELOW}


@dataclass
class LineReading:
    text: str
    confidence: float  # the least confident character's probability
    box: tuple[int, int, int, int]  # the line's ink in the image: x0, y0, x1, y1
    chars: list[CharReading] = field(default_factory=list)
    alternatives: list[tuple[str, float]] = field(default_factory=list)  # n-best (text, probability), best first

    @property
    def uncertain(self) -> bool:
        return self.confidence < UNCERTAIN_BELOW

    def to_dict(self) -> dict:
        return {"text": self.text, "confidence": round(self.confidence, 6), "uncertain": self.uncertain,
                "box": list(self.box), "chars": [c.to_dict() for c in self.chars],
                "alternatives": [{"text": t, "probability": round(p, 6)} for t, p in self.alternatives]}


@dataclass
class Reading:
    lines: list[LineReading]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict:
        return {"text": self.text, "lines": [line.to_dict() for line in self.lines]}


def allowed_classes(classes: list[str], charset: str | None) -> list[int] | None:
    """A charset's class indices for a line model: its own classes and the space, and for a charset with
    letters every mark as well (see the module docstring)."""
    allowed = charset_indices(classes, charset)
    if allowed is None:
        return None
    if any(c.isalpha() for c in CHARSETS[charset]):
        alnum = set(CHARSETS["alnum"])
        extra = {i for i, c in enumerate(classes) if c not in alnum}
    else:  # digits were asked for: a slanted 1 is a 1, not a "/"
        extra = {i for i, c in enumerate(classes) if c == " "}
    return sorted(set(allowed) | extra)


def read_image(rec, image, *, top_k: int = TOP_K, charset: str | None = None, lexicon=None,
               max_lines: int = MAX_LINES) -> Reading:
    """Read every line of `image` (a path, bytes, PIL image or array) with the line model `rec`."""
    if rec.card.task != "ctc":
        raise ScrawlError(f"model {rec.name!r} reads one character per image, not lines: use a line model "
                          "(Recognizer('line'), scrawl read --model line)")
    if top_k < 1:
        raise ScrawlError("top_k must be at least 1")
    allowed = allowed_classes(rec.classes, charset)
    ink = load_image(image)
    out, seen = [], 0
    for line in split_lines(ink, max_lines=max_lines):
        try:
            framed = frame_line(line.ink, rec.spec, full_shape=ink.shape)  # specks judged against the image
        except EmptyImageError:
            continue  # specks only: not a line
        seen += 1
        reading = read_framed(rec, framed, line.box, line.ink, top_k=top_k, allowed=allowed, lexicon=lexicon)
        if reading.text.strip():
            out.append(reading)
    if not out:
        raise EmptyImageError("nothing to read: no handwriting found in the image" if not seen else
                              "nothing legible: the line model read no characters in the ink it found")
    return Reading(out)


def read_framed(rec, framed, box, ink: np.ndarray, *, top_k: int, allowed, lexicon) -> LineReading:
    """One framed line (vision.framing.LineFrame) -> LineReading; `box` and `ink`: the line in the image.
    The alternatives are texts with their probabilities (CTC: summed over every path that spells them):
    the prefix beam search's n-best (with a lexicon: re-ranked, the best one's words re-spelled,
    `Lexicon.search`), or for top_k 1 the best path's
    text alone. The line's text is the first, aligned to the frames for its characters' boxes."""
    logits = rec.logits(framed.image[None, None])[0]  # (T, C + 1)
    logp = log_softmax(logits, allowed)
    answer = greedy(np.exp(logp), rec.classes)
    if top_k > 1 or lexicon is not None:
        alternatives = beam_search(logp, rec.classes, beam=max(BEAM, top_k))
        if lexicon is not None:
            alternatives = lexicon.search(logp, alternatives, rec.classes)
    else:  # the best path's text and its probability, without the beam's cost
        alternatives = [(answer.label, float(np.exp(text_logprob(logp, answer.label, rec.classes))))]
    best = alternatives[0][0] if alternatives else answer.label
    if best != answer.label:
        spans = align(logp, best, rec.classes)
        if spans is not None:
            answer = LineAnswer(best, min((c.confidence for c in spans), default=1.0), spans)
    boxes = _char_boxes(_char_frames(answer.chars, logp.shape[0]), framed, box, ink)
    chars = [CharReading(c.char, c.confidence, b) for c, b in zip(answer.chars, boxes)]
    return LineReading(answer.label, answer.confidence, tuple(box), chars, alternatives[:top_k])


def _char_frames(spans, frames: int) -> list[tuple[float, float]]:
    """Each character's stretch of frames: from its own firing to the next character's (the line's ends
    for the first and last). The bidirectional line model fires a character on one or two frames at its
    start, not its middle: halfway between firings put the boxes half a character to the left, where an
    isolated-character model read 22.4% of 833 crops of correctly read UNIPEN letters and 35.7% of
    touching MNIST digits, against 69.0% and 94.2% from each firing to the next (benchmarks/char_boxes.py)."""
    at = [(c.start + c.end) / 2 - 0.5 for c in spans]  # the firing's first frame (its middle, for two)
    return [(at[k] if k else 0.0, at[k + 1] if k + 1 < len(at) else float(frames)) for k in range(len(at))]


def _char_boxes(frames, framed, box, ink: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Each character's frames [start, end) -> its box in the image: the columns they cover, narrowed to
    the ink there (a space, with none, keeps its columns), and the rows of that ink. All characters at
    once, from a summary of the ink's columns (44 us a character when each box scanned its own slice)."""
    if not frames:
        return []
    h, w = ink.shape
    inked = ink > 0.5
    cols = inked.any(axis=0)  # (w,)
    top = np.append(np.where(cols, inked.argmax(axis=0), h), h)  # (w + 1,) first inked row; h: none
    bottom = np.append(np.where(cols, h - inked[::-1].argmax(axis=0), 0), 0)  # (w + 1,) last + 1; 0: none
    where = np.flatnonzero(cols)
    f = np.asarray(frames, np.float64) * STRIDE  # (n, 2) framed columns
    x0 = np.clip(np.floor(framed.input_x(f[:, 0])).astype(np.int64), 0, w - 1)
    x1 = np.clip(np.maximum(np.ceil(framed.input_x(f[:, 1])).astype(np.int64), x0 + 1), 1, w)
    first = np.searchsorted(where, x0)  # the first inked column at or after x0, as an index into `where`
    last = np.searchsorted(where, x1) - 1  # the last one before x1
    has = (first < len(where)) & (first <= last)
    edges = np.stack([x0, x1], axis=1).ravel()  # reduceat over [x0, x1) of each character
    y0 = np.where(has, np.minimum.reduceat(top, edges)[::2], 0)
    y1 = np.where(has, np.maximum.reduceat(bottom, edges)[::2], h)
    if len(where):
        x0 = np.where(has, where[np.minimum(first, len(where) - 1)], x0)
        x1 = np.where(has, where[np.maximum(last, 0)] + 1, x1)
    lx0, ly0 = box[0], box[1]
    return [(lx0 + int(a), ly0 + int(b), lx0 + int(c), ly0 + int(d)) for a, b, c, d in zip(x0, y0, x1, y1)]
