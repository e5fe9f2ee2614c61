"""Do a line read's character boxes hold their characters? (issue 13: per-character boxes from the CTC
alignment, drawn on the page and given by `scrawl read --json`.)

No test set here knows where each character lies, so the boxes are judged by what they hold: every box
of a line read exactly right is cropped from the image and read alone by an isolated-character model
(`digits` for touching MNIST-test digit strings, `chars` for UNIPEN validation writers' words, case
ignored); the share it reads as the line's character is the figure. Two rules turn the CTC firings into
boxes:

- halfway: a character spans from halfway after the previous character's firing to halfway before the
  next one's (Scrawl before 2026-12-07's evening);
- firing to next: from its own firing to the next character's (scrawl.runtime.reader, now): the
  bidirectional model fires each character at its start.

Writes benchmarks/results/char_boxes.{json,md}.

    python benchmarks/char_boxes.py [--touching 300] [--unipen 400] [--data-dir DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def halfway(spans, frames: int) -> list[tuple[float, float]]:
    """The old rule: halfway to the neighbours' firings (the line's ends widened by the firing's width)."""
    out = []
    for k, c in enumerate(spans):
        left = (spans[k - 1].end + c.start) // 2 if k else max(0, c.start - (c.end - c.start) - 1)
        right = (c.end + spans[k + 1].start + 1) // 2 if k + 1 < len(spans) else min(frames, c.end + (c.end - c.start) + 1)
        out.append((left, max(right, left + 1)))
    return out


def held(line_rec, char_rec, test, rules: dict) -> dict:
    """Per rule: boxes whose crop `char_rec` reads as the line's character, over the lines read exactly."""
    from scrawl.errors import ScrawlError
    from scrawl.labels import characters_of
    from scrawl.runtime.reader import _char_boxes, allowed_classes
    from scrawl.tasks.ctc import greedy, log_softmax
    from scrawl.vision.framing import frame_line
    from scrawl.vision.ink import load_image
    from scrawl.vision.lines import split_lines

    allowed = allowed_classes(line_rec.classes, "digits" if set("".join(test.texts)) <= set("0123456789") else None)
    chars = [i for i, c in enumerate(char_rec.classes) if c in characters_of(char_rec.classes)]
    known = {char_rec.classes[i].upper() for i in chars}
    right = dict.fromkeys(rules, 0)
    boxes = lines = 0
    for image, truth in zip(test.images, test.texts):
        ink = load_image(image)
        found = split_lines(ink)
        if len(found) != 1:
            continue
        line = found[0]
        framed = frame_line(line.ink, line_rec.spec, full_shape=ink.shape)
        logp = log_softmax(line_rec.logits(framed.image[None, None])[0], allowed)
        answer = greedy(np.exp(logp), line_rec.classes)
        if answer.label != truth:
            continue
        keep = [k for k, c in enumerate(answer.chars) if c.char.isalnum() and c.char.upper() in known]
        lines, boxes = lines + 1, boxes + len(keep)
        for name, rule in rules.items():
            placed = _char_boxes(rule(answer.chars, logp.shape[0]), framed, line.box, line.ink)
            crops = []
            for k in keep:
                x0, y0, x1, y1 = placed[k]
                try:
                    crops.append(_frame(ink[y0:y1, x0:x1], char_rec.spec))
                except ScrawlError:  # nothing in the box: it cannot hold its character
                    crops.append(np.zeros((char_rec.spec.size,) * 2, np.float32))
            if crops:
                probs = char_rec.probabilities(np.stack(crops))[:, chars]  # its best character, not "not one"
                read = [char_rec.classes[chars[i]] for i in probs.argmax(1)]
                right[name] += sum(r.upper() == answer.chars[k].char.upper() for r, k in zip(read, keep))
    return {"lines_read_exactly": lines, "boxes": boxes,
            "held": {name: round(v / max(1, boxes), 4) for name, v in right.items()}}


def _frame(ink_crop: np.ndarray, spec) -> np.ndarray:
    from scrawl.vision.framing import _frame_ink

    return _frame_ink(ink_crop, spec)  # the crop is already an ink map: no polarity guess on a tight crop


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="line")
    ap.add_argument("--touching", type=int, default=300, help="touching digit strings")
    ap.add_argument("--unipen", type=int, default=400, help="UNIPEN validation lines")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for char_boxes.{json,md}")
    args = ap.parse_args(argv)

    from scrawl.evaluation.lines import line_test_set
    from scrawl.runtime.reader import _char_frames
    from scrawl.runtime.recognizer import Recognizer

    rec = Recognizer(args.model)
    rules = {"halfway": halfway, "firing to next": _char_frames}
    out = {"model": args.model, "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for name, n, judge in (("touching-digits", args.touching, "digits"), ("unipen-words", args.unipen, "chars")):
        if n:
            res = held(rec, Recognizer(judge), line_test_set(name, args.data_dir, limit=n), rules)
            out[name] = {"lines": n, "judge": judge, **res}
    results = Path(args.out)
    results.mkdir(parents=True, exist_ok=True)
    (results / "char_boxes.json").write_text(json.dumps(out, indent=2) + "\n")
    md = ["# Character boxes: the share an isolated-character model reads as their character "
          "(benchmarks/char_boxes.py)", "", f"model {args.model}, {out['when']}", "",
          "| test set | lines read exactly | boxes | " + " | ".join(rules) + " |",
          "|---|---:|---:|" + "---:|" * len(rules)]
    for name in ("touching-digits", "unipen-words"):
        if name in out:
            r = out[name]
            md.append(f"| {name} (judged by `{r['judge']}`) | {r['lines_read_exactly']} | {r['boxes']} | "
                      + " | ".join(f"{r['held'][k]:.1%}" for k in rules) + " |")
    (results / "char_boxes.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
