"""The answers of POST /api/read, without HTTP: a line model's reading, and the old segmenter's reading
(a character model applied to each piece of ink) in the same JSON shape, so that the page and API
clients can compare the two.

The shape is scrawl.runtime.reader.Reading's `to_dict()`, plus the model's name, the method and the
image's size:

    {"model", "method": "line" | "segmenter", "size": [w, h], "text",
     "lines": [{"text", "confidence", "uncertain", "box": [x0, y0, x1, y1],
                "chars": [{"char", "confidence", "box", "uncertain"}],
                "alternatives": [{"text", "probability"}]}]}

The segmenter's characters also carry `top_k` (each character's alternatives), `framed` (the 28x28
image the character model saw), `not_a_character` and `rejected` (scrawl.runtime.recognizer.Prediction),
and its line alternatives are the most likely combinations of the characters' alternatives. A piece of
ink the character model rejects (not a character: a speck, a slip of the pen) stays in its line's
`chars`, with `"rejected": true` and `"char": ""`, but is no part of the text, the line's confidence
or its alternatives; a line of nothing but such pieces reads as "" and adds nothing to the text. An
image with nothing to read raises EmptyImageError (a 422 "nothing to read"), whichever the method.
"""

from __future__ import annotations

import io

from ..errors import EmptyImageError
from ..settings import UNCERTAIN_BELOW

NOTHING = "nothing to read: no characters found in the image"


def read_lines(rec, data: bytes, *, top_k: int, charset: str | None, lexicon=None,
               uncertain_below: float = UNCERTAIN_BELOW) -> dict:
    """A line model (task "ctc") reads every line of the image; `lexicon`: a Lexicon or None."""
    out = rec.read(data, top_k=top_k, charset=charset, lexicon=lexicon).to_dict()
    lines = out["lines"]  # specks are no lines: the reader judges them against the whole image
    # The reader flags with the library's threshold; the app may be given another.
    for line in lines:
        line["uncertain"] = line["confidence"] < uncertain_below
        for c in line["chars"]:
            c["uncertain"] = c["confidence"] < uncertain_below
    return {"method": "line", "size": image_size(data), "text": "\n".join(line["text"] for line in lines), "lines": lines}


def read_segmented(rec, data: bytes, *, top_k: int, charset: str | None, max_characters: int,
                   character) -> dict:
    """The segmenter: cut the ink into characters (scrawl.vision.segment) and read each with the character
    model `rec`. `character(prediction)` -> the character's JSON (label, confidence, uncertain, top_k,
    not_a_character, rejected, framed), as /api/predict gives it."""
    from ..vision.segment import read

    seg, preds = read(data, rec, top_k=top_k, charset=charset, max_characters=max_characters)
    if not preds:
        raise EmptyImageError(NOTHING)
    lines = []
    for k in range(seg.lines):
        mine = [(piece, character(pred)) for piece, pred in zip(seg.pieces, preds) if piece.line == k]
        if mine:
            lines.append(_segmented_line(mine, top_k))
    text = "\n".join(line["text"] for line in lines if line["text"])  # a line of rejected marks only: no text
    return {"method": "segmenter", "size": list(seg.size), "text": text, "lines": lines}


def _segmented_line(pieces: list, top_k: int) -> dict:
    """One line of (Piece, character JSON) pairs, left to right -> the line's JSON. Rejected pieces (not
    a character) are listed with "char" "" and left out of the text, confidence and alternatives."""
    chars = []
    for piece, c in pieces:
        x, y, w, h = piece.box
        chars.append({"char": "" if c["rejected"] else c["label"], "confidence": c["confidence"],
                      "box": [x, y, x + w, y + h], "uncertain": c["uncertain"], "rejected": c["rejected"],
                      "not_a_character": c["not_a_character"], "top_k": c["top_k"], "framed": c["framed"]})
    boxes = [c["box"] for c in chars]
    box = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    read = [c for c in chars if not c["rejected"]]
    least = min(read, key=lambda c: c["confidence"]) if read else {"confidence": 0.0, "uncertain": True}
    options = [[(a["label"], a["probability"]) for a in c["top_k"]] for c in read]
    alternatives = best_combinations(options, top_k) if read else []
    return {"text": "".join(c["char"] for c in read), "confidence": least["confidence"],
            "uncertain": least["uncertain"], "box": box, "chars": chars,
            "alternatives": [{"text": t, "probability": round(p, 6)} for t, p in alternatives]}


def best_combinations(options: list[list[tuple[str, float]]], k: int) -> list[tuple[str, float]]:
    """The k most likely texts when position i is one of options[i] (label, probability), independently:
    the segmenter's characters are read one by one, so a line's probability is their product."""
    best = [("", 1.0)]
    for alts in options:
        best = sorted(((t + c, p * q) for t, p in best for c, q in alts), key=lambda tp: -tp[1])[:k]
    return best


def image_size(data: bytes) -> list[int] | None:
    """[width, height] of an encoded image after its EXIF rotation (what the boxes refer to), from its
    header; None if it cannot be told (the image has been read by then, so this is never the error)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap the sides
    except Exception:  # noqa: BLE001 - optional information: a reader that cannot tell gives None
        return None
    return [h, w] if turned else [w, h]
