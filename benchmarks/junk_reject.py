"""The reject class (issue 15): how much of what is not a character a model turns away, and how much of
what is a character it wrongly turns away.

Negatives, read the way a user's image is read (dark ink on white, `Recognizer.frame` then
`predict_framed`, i.e. `Recognizer.predict`):
- the training generator's kinds (scrawl.data.junk: dot, dash, blob, scribble, crossed, pair, fragment,
  noise) drawn with another seed than training's and with real characters from a TEST set (MNIST test
  for a digit model, the held-out part of emnist-byclass-testhalf for a character model);
- kinds training never made, drawn here on a 280x280 page like the web canvas: a ring of dots, a big
  filled rectangle, a few faint specks, one short stroke on an empty page (never upright: that is a 1),
  and hatching (parallel strokes).
A negative is "handled" when the answer is rejected or uncertain (the answer contract: rejected = the
reject class beats the best character; uncertain = rejected or confidence < settings.UNCERTAIN_BELOW)
or when framing finds no ink in it ("refused": the user gets "no ink found", not a character).
Real test characters (MNIST test, 10,000; for a character model also the ByClass held-out part, 23,265),
as the datasets hold them (reframed only when the model is framed otherwise): the share rejected, the
share uncertain and the accuracy. Floors (tests/test_junk.py): >= 95% of negatives handled, <= 1% of
the MNIST test digits rejected.

Writes benchmarks/results/junk_reject_MODEL.{json,md} and prints the table.

    python benchmarks/junk_reject.py [--model digits|digits-lite|chars|PATH] [--n 2600] [--seed 2024]
                                     [--real-n 0] [--runtime torch] [--data-dir DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PAGE = 280  # the web page's drawing canvas, in pixels
NEW_KINDS = ("dot-ring", "filled-rect", "faint-specks", "lone-stroke", "hatching")
BATCH = 1000


# --- what a model answers ---------------------------------------------------------------------------


def verdicts(rec, framed: np.ndarray) -> dict:
    """(N, 28, 28) framed images -> per image: the label answered, rejected, uncertain (numpy arrays),
    from the answers' own fields (scrawl.runtime.recognizer.Prediction)."""
    answers = [a for i in range(0, len(framed), BATCH) for a in rec.predict_framed(framed[i : i + BATCH])]
    return {"label": np.array([a.label for a in answers], dtype=object),
            "rejected": np.array([a.rejected for a in answers], bool),
            "uncertain": np.array([a.uncertain for a in answers], bool)}


# --- negatives training never made (ink bright on a PAGE x PAGE canvas) -------------------------------


def _dot_ring(rng) -> np.ndarray:
    from scrawl.data.strokes import draw_polylines

    k, radius = int(rng.integers(6, 13)), rng.uniform(50, 110)
    angles = rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k + rng.normal(0, 0.08, k)
    centre = rng.uniform(PAGE / 2 - 20, PAGE / 2 + 20, 2)
    dots = [(centre + radius * np.array([np.cos(a), np.sin(a)]))[None] for a in angles]
    return draw_polylines(np.zeros((PAGE, PAGE), np.uint8), dots, float(rng.uniform(10, 20)))


def _filled_rect(rng) -> np.ndarray:
    import cv2

    w = rng.uniform(80, 220)
    h = w * rng.uniform(0.6, 1.6)  # not a tall bar: framed, that could pass for an l or a 1
    box = cv2.boxPoints(((PAGE / 2 + rng.uniform(-20, 20), PAGE / 2 + rng.uniform(-20, 20)),
                         (w, min(h, PAGE - 20)), rng.uniform(-15, 15)))
    canvas = np.zeros((PAGE, PAGE), np.uint8)
    cv2.fillPoly(canvas, [np.round(box).astype(np.int32)], 255, lineType=cv2.LINE_AA)
    return canvas


def _faint_specks(rng) -> np.ndarray:
    from scrawl.data.strokes import draw_polylines

    specks = [p[None] for p in rng.uniform(20, PAGE - 20, (int(rng.integers(3, 9)), 2))]
    return draw_polylines(np.zeros((PAGE, PAGE), np.uint8), specks, float(rng.uniform(3, 9)),
                          value=int(rng.integers(40, 110)))  # light grey on white paper


def _lone_stroke(rng) -> np.ndarray:
    from scrawl.data.strokes import draw_polylines

    angle, length = np.deg2rad(rng.uniform(-35, 35)), rng.uniform(20, 50)
    t = np.linspace(-0.5, 0.5, 6)
    along = np.array([np.cos(angle), np.sin(angle)])
    across = np.array([-along[1], along[0]])
    bend = rng.uniform(-0.15, 0.15) * length * (1 - 4 * t**2)  # a slight curve
    line = rng.uniform(60, PAGE - 60, 2) + np.outer(t * length, along) + np.outer(bend, across)
    return draw_polylines(np.zeros((PAGE, PAGE), np.uint8), [line], float(rng.uniform(8, 14)))


def _hatching(rng) -> np.ndarray:
    from scrawl.data.strokes import draw_polylines

    k, angle = int(rng.integers(4, 8)), np.deg2rad(rng.uniform(20, 70) * rng.choice([-1, 1]))
    length, gap = rng.uniform(60, 140), rng.uniform(15, 30)
    along = np.array([np.cos(angle), np.sin(angle)])
    across = np.array([-along[1], along[0]])
    start = np.array([PAGE / 2, PAGE / 2]) - across * gap * (k - 1) / 2
    lines = [start + across * gap * i + np.outer([-length / 2, length / 2], along) + rng.normal(0, 2, (2, 2))
             for i in range(k)]
    return draw_polylines(np.zeros((PAGE, PAGE), np.uint8), lines, float(rng.uniform(6, 12)))


NEW_MAKERS = {"dot-ring": _dot_ring, "filled-rect": _filled_rect, "faint-specks": _faint_specks,
              "lone-stroke": _lone_stroke, "hatching": _hatching}


def negatives(per_kind: int, seed: int, chars: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    """per_kind of each training kind (scrawl.data.junk, `chars` from a test set) and of each NEW_KINDS,
    ink bright."""
    from scrawl.data.junk import KINDS, make_junk

    rng = np.random.default_rng([seed, 1515])  # training draws with [its seed, 15]
    images, kinds = make_junk(per_kind * len(KINDS), rng, chars)
    for kind in NEW_KINDS:
        images += [NEW_MAKERS[kind](rng) for _ in range(per_kind)]
        kinds += [kind] * per_kind
    return images, kinds


def read_negatives(rec, images: list[np.ndarray], kinds: list[str]) -> dict:
    """Each negative as a user's image (dark ink on white) through the model's framing and the model."""
    from scrawl.data.junk import KINDS
    from scrawl.errors import EmptyImageError

    framed, shown = [], []
    for i, image in enumerate(images):
        try:
            framed.append(rec.frame(255 - image))
            shown.append(i)
        except EmptyImageError:
            pass
    v = verdicts(rec, np.stack(framed)) if framed else {"label": [], "rejected": [], "uncertain": []}
    refused = np.ones(len(images), bool)
    refused[shown] = False
    rejected, uncertain = np.zeros(len(images), bool), np.zeros(len(images), bool)
    labels = np.full(len(images), None, dtype=object)
    rejected[shown], uncertain[shown], labels[shown] = v["rejected"], v["uncertain"], v["label"]
    kinds = np.array(kinds)
    rows = {kind: _negative_row(kinds == kind, refused, rejected, uncertain, labels) for kind in dict.fromkeys(kinds)}
    return {"n": len(images), **_negative_row(np.ones(len(images), bool), refused, rejected, uncertain, labels),
            "training_kinds": _negative_row(np.isin(kinds, KINDS), refused, rejected, uncertain, labels),
            "new_kinds": _negative_row(np.isin(kinds, NEW_KINDS), refused, rejected, uncertain, labels),
            "kinds": rows}


def _negative_row(sel, refused, rejected, uncertain, labels) -> dict:
    n = int(sel.sum())
    handled = refused | uncertain  # uncertain includes rejected
    answered = sel & ~handled
    common = Counter(labels[answered]).most_common(3)
    return {"n": n, "handled": round(float(handled[sel].mean()), 4), "refused": round(float(refused[sel].mean()), 4),
            "rejected": round(float(rejected[sel].mean()), 4),
            "uncertain": round(float((uncertain & ~rejected)[sel].mean()), 4),
            "answered_as": [f"{c} ({k})" for c, k in common]}


# --- real characters ----------------------------------------------------------------------------------


def real_sets(rec) -> list[str]:
    from scrawl.labels import DIGITS, characters_of

    digit_model = set(characters_of(rec.classes)) <= set(DIGITS)
    return ["mnist"] if digit_model else ["emnist-byclass-testhalf", "mnist"]


def load_test(name: str, data_dir, limit: int):
    from scrawl.data import load_dataset

    ds = load_dataset(name, "test", data_dir, download=False)
    images, labels = ds.images.numpy(), ds.labels.numpy()
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, [ds.classes[y] for y in labels]


def read_real(rec, name: str, images: np.ndarray, truth: list[str]) -> dict:
    from scrawl.data import framing_of
    from scrawl.vision import frame_batch

    framed = images / np.float32(255)
    if framing_of(name) != rec.spec.framing:  # as `scrawl evaluate` does
        framed = frame_batch(images, rec.spec)
    v = verdicts(rec, framed)
    right = v["label"] == np.array(truth, dtype=object)
    sure = ~v["uncertain"]
    return {"dataset": name, "n": len(truth), "rejected": round(float(v["rejected"].mean()), 4),
            "uncertain": round(float(v["uncertain"].mean()), 4), "accuracy": round(float(right.mean()), 4),
            "confident_accuracy": round(float(right[sure].mean()), 4) if sure.any() else None}


# --- report ---------------------------------------------------------------------------------------------


def markdown(r: dict) -> str:
    neg = r["negatives"]
    lines = [f"Reject class, model {r['model']} ({r['classes']} classes, reject class: "
             f"{'yes' if r['has_reject_class'] else 'no'}), measured {r['when']} by `benchmarks/junk_reject.py` "
             f"(seed {r['seed']}). Negatives are read as a user's image (dark on white, the model's framing); "
             "handled = refused by framing (no ink), rejected, or uncertain.", "",
             "| negatives | n | handled | refused | rejected | uncertain (not rejected) | answered as |",
             "|---|---:|---:|---:|---:|---:|---|"]

    def row(name, x):
        return (f"| {name} | {x['n']:,} | {x['handled']:.1%} | {x['refused']:.1%} | {x['rejected']:.1%} | "
                f"{x['uncertain']:.1%} | {', '.join(x['answered_as'])} |")

    lines += [row(kind, x) for kind, x in neg["kinds"].items()]
    lines += [row("**training kinds**", neg["training_kinds"]), row("**new kinds**", neg["new_kinds"]),
              row("**all**", neg)]
    lines += ["", "| real test characters | n | rejected | uncertain | accuracy | accuracy when sure |",
              "|---|---:|---:|---:|---:|---:|"]
    for x in r["real"]:
        sure = "-" if x["confident_accuracy"] is None else f"{x['confident_accuracy']:.2%}"
        lines.append(f"| {x['dataset']} test | {x['n']:,} | {x['rejected']:.2%} | {x['uncertain']:.2%} | "
                     f"{x['accuracy']:.2%} | {sure} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="digits", help="bundled model (digits, digits-lite, chars) or a file")
    ap.add_argument("--runtime", default="torch", choices=["torch", "onnx"])
    ap.add_argument("--n", type=int, default=2600, help="negatives in all, shared equally by the 13 kinds")
    ap.add_argument("--seed", type=int, default=2024, help="draws the negatives (training uses another)")
    ap.add_argument("--real-n", type=int, default=0, help="real test characters per set (0: all)")
    ap.add_argument("--data-dir", default=os.environ.get("SCRAWL_DATA"), help="datasets folder")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    from scrawl.data.junk import KINDS
    from scrawl.labels import NOT_A_CHARACTER
    from scrawl.runtime.recognizer import Recognizer

    t0 = time.perf_counter()
    rec = Recognizer(args.model, runtime=args.runtime)
    sets = real_sets(rec)
    tests = {name: load_test(name, args.data_dir, args.real_n) for name in sets}
    per_kind = max(1, args.n // (len(KINDS) + len(NEW_KINDS)))
    images, kinds = negatives(per_kind, args.seed, tests[sets[0]][0])
    if len(images) < 2000:
        print(f"note: {len(images)} negatives; issue 15's figures use at least 2,000 (--n 2600)")
    report = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
              "model": args.model, "runtime": args.runtime, "classes": len(rec.classes),
              "has_reject_class": NOT_A_CHARACTER in rec.classes, "seed": args.seed,
              "negatives_characters_from": f"{sets[0]} test",
              "negatives": read_negatives(rec, images, kinds),
              "real": [read_real(rec, name, *tests[name]) for name in sets]}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    stem = Path(args.model).stem if Path(args.model).suffix else args.model
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"junk_reject_{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (args.out / f"junk_reject_{stem}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
