"""The line model's accuracy bars (issue 13), read the way a user's images are read (`Recognizer.read`).

- touching digits: --touching strings of 3-10 MNIST *test* digits (never seen in training: the line
  model's numbers are composed from MNIST training digits), neighbours' ink overlapping by up to 30% of
  a digit's width, random baseline and size (scrawl.data.synth.touching_digit_strings); bar: >= 97% read
  exactly. The same strings read by the old segmenter (connected components + the digits model) for
  comparison.
- UNIPEN validation writers (writer-disjoint from training), rendered from their pen strokes, half as
  photos of paper: character error rate without a word prior (bar: <= 8%), word accuracy without and
  with the word prior (wordfreq English).

Writes benchmarks/results/read_lines.{json,md} and docs/results/line-examples.png (some of the lines with
what was read and the character boxes); --check exits 1 when a bar is missed.

    python benchmarks/read_lines.py [--model line] [--touching 1000] [--unipen 2000] [--data-dir DIR] [--check]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOUCHING_BAR = 0.97
CER_BAR = 0.08


def segmenter_exact(test) -> float:
    """The old path: scrawl.vision.segment cuts the string into characters, the digits model reads each."""
    from scrawl.errors import ScrawlError
    from scrawl.runtime.recognizer import Recognizer
    from scrawl.vision.segment import join_lines, read

    rec = Recognizer("digits")
    right = 0
    for image, text in zip(test.images, test.texts):
        try:
            seg, preds = read(image, rec, charset="digits")
            got = "".join(join_lines(seg, [p.label for p in preds]))
        except ScrawlError:
            got = ""
        right += got.replace(" ", "").replace("\n", "") == text
    return right / max(1, len(test.texts))


def draw_examples(rec, sets: list, path: Path, per_set: int = 5) -> None:
    """The first lines of each test set, read, with their character boxes (red: uncertain)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows = [(im, t) for test in sets for im, t in list(zip(test.images, test.texts))[:per_set]]
    fig = Figure(figsize=(9, 1.1 * len(rows)), dpi=110, facecolor="white")
    for k, (image, truth) in enumerate(rows):
        ax = fig.add_subplot(len(rows), 1, k + 1)
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_axis_off()
        try:
            line = rec.read(image).lines[0]
        except Exception as exc:  # noqa: BLE001 - shown in the picture
            ax.set_title(f"true {truth!r}: {exc}", fontsize=8, loc="left")
            continue
        for c in line.chars:
            x0, y0, x1, y1 = c.box
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=0.8,
                                   color="red" if c.confidence < 0.6 else "tab:blue"))
        ax.set_title(f"true {truth!r}   read {line.text!r} ({line.confidence:.0%})", fontsize=8, loc="left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor="white")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="line")
    ap.add_argument("--touching", type=int, default=1000, help="touching digit strings (0: skip)")
    ap.add_argument("--unipen", type=int, default=2000, help="UNIPEN validation lines (0: all, about 8,000)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)

    from scrawl.evaluation.lines import evaluate_lines, line_test_set
    from scrawl.runtime.recognizer import Recognizer
    from scrawl.tasks.lexicon import Lexicon

    rec = Recognizer(args.model)
    shown = []
    out = {"model": args.model, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": platform.processor() or platform.machine()}
    if args.touching:
        test = line_test_set("touching-digits", args.data_dir, limit=args.touching)
        shown.append(test)
        t0 = time.perf_counter()
        ev = evaluate_lines(rec, test, charset="digits")
        out["touching_digits"] = {"strings": len(test.texts), "exact": ev.metrics["exact"], "cer": ev.metrics["cer"],
                                  "seconds": round(time.perf_counter() - t0, 1),
                                  "segmenter_exact": segmenter_exact(test), "bar_exact": TOUCHING_BAR}
    test = line_test_set("unipen-words", args.data_dir, limit=args.unipen or None)
    shown.append(test)
    t0 = time.perf_counter()
    ev = evaluate_lines(rec, test, lexicon=Lexicon())
    m = ev.metrics
    out["unipen_val"] = {"lines": m["n"], "characters": m["characters"], "words": m["words"], "cer": m["cer"],
                         "wer": m["wer"], "exact": m["exact"], "word_accuracy": m["word_accuracy"],
                         "with_word_prior": m["with_word_prior"], "seconds": round(time.perf_counter() - t0, 1),
                         "bar_cer": CER_BAR}
    misses = []
    if "touching_digits" in out and out["touching_digits"]["exact"] < TOUCHING_BAR:
        misses.append("touching digits")
    if m["cer"] > CER_BAR:
        misses.append("UNIPEN CER")
    out["bars_missed"] = misses
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "read_lines.json").write_text(json.dumps(out, indent=2) + "\n")
    md = ["# Line model accuracy (benchmarks/read_lines.py)", "", f"model {args.model}, {out['when']}", ""]
    if "touching_digits" in out:
        t = out["touching_digits"]
        md.append(f"- touching MNIST-test digit strings ({t['strings']}): **{t['exact']:.2%} exact** (bar {TOUCHING_BAR:.0%}), "
                  f"CER {t['cer']:.2%}; old segmenter + digits model: {t['segmenter_exact']:.2%} exact")
    u = out["unipen_val"]
    w = u["with_word_prior"]
    md.append(f"- UNIPEN validation writers ({u['lines']} lines): **CER {u['cer']:.2%}** (bar {CER_BAR:.0%}), "
              f"WER {u['wer']:.2%}, word accuracy {u['word_accuracy']:.2%}; with the word prior CER {w['cer']:.2%}, "
              f"word accuracy {w['word_accuracy']:.2%}")
    md.append(f"- bars missed: {', '.join(misses) or 'none'}")
    (results / "read_lines.md").write_text("\n".join(md) + "\n")
    draw_examples(rec, shown, HERE.parent / "docs" / "results" / "line-examples.png")
    print("\n".join(md))
    return 1 if args.check and misses else 0


if __name__ == "__main__":
    sys.exit(main())
