"""MNIST framing's work grid (scrawl.vision.framing.OVERSAMPLE): time, fidelity and accuracy per grid.

Scrawl frames a character like MNIST did (fit the ink in a 20x20 box, centre of mass at the middle of
28x28) on a grid OVERSAMPLE times finer than the output, then block-averages it. For each grid
(default 8 and 4) this measures, on the first --images MNIST test digits written as PNG bytes (dark
ink on white, like the scans of `benchmarks/predict_folder.py`):
- framing time per image in this process (`frame_many` over chunks of 64, as `scrawl predict`'s
  workers do; best of --repeats, one OpenCV thread): run it on an idle machine;
- fidelity: mean absolute difference between the re-framed digit and MNIST's own image, and the
  median distance between their centres of mass (px);
- the accuracy of each bundled digit reader on the re-framed digits (ONNX Runtime), and how many of
  its answers differ from the answers on the default grid's framing.
Writes benchmarks/results/framing_grid.{json,md}.

    python benchmarks/framing_grid.py [--images 10000] [--grids 8,4] [--repeats 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
READERS = [("digits", None), ("digits-lite", None), ("chars", "digits")]  # (bundled model, charset)


def centre_of_mass(x: np.ndarray) -> np.ndarray:
    """(N, 2) row and column centres of mass of (N, H, W) images."""
    idx = np.arange(x.shape[1]) + 0.5
    mass = x.sum((1, 2))
    return np.stack([(x.sum(2) @ idx) / mass, (x.sum(1) @ idx) / mass], 1)


def measure_grid(grid: int, pngs: list[bytes], originals: np.ndarray, labels: np.ndarray, repeats: int) -> dict:
    from scrawl.runtime.recognizer import Recognizer
    from scrawl.vision import framing
    from scrawl.vision.scans import frame_many

    framing.OVERSAMPLE = grid  # read at call time by _frame_mnist
    spec = framing.FrameSpec(framing="mnist", size=28, box=20)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        framed = [f for i in range(0, len(pngs), 64) for f in frame_many(pngs[i : i + 64], spec)]
        best = min(best, time.perf_counter() - t0)
    x = np.stack(framed)
    orig = originals.astype(np.float32) / 255
    moved = np.linalg.norm(centre_of_mass(x) - centre_of_mass(orig), axis=1)
    row = {"grid": grid, "us_per_image": round(best / len(pngs) * 1e6, 1),
           "mean_abs_diff_to_mnist": round(float(np.abs(x - orig).mean()), 4),
           "median_centre_distance_px": round(float(np.median(moved)), 3), "readers": {}}
    for model, charset in READERS:
        rec = Recognizer(model, runtime="onnx")
        answers = [p.label for i in range(0, len(x), 500) for p in rec.predict_framed(x[i : i + 500], charset=charset)]
        row["readers"][model] = {"charset": charset, "answers": answers,
                                 "accuracy": round(float(np.mean(np.array(answers) == labels.astype(str))), 4)}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--grids", default="8,4", help="OVERSAMPLE values; the first is the reference for 'answers differ'")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=os.environ.get("SCRAWL_DATA"))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    from scrawl.data import load_dataset

    test = load_dataset("mnist", "test", args.data_dir, download=False)
    originals = np.asarray(test.images)[: args.images]
    labels = np.asarray(test.labels)[: args.images]
    pngs = [cv2.imencode(".png", 255 - im)[1].tobytes() for im in originals]
    rows = [measure_grid(int(g), pngs, originals, labels, args.repeats) for g in args.grids.split(",")]
    ref = rows[0]
    for r in rows:
        for model, v in r["readers"].items():
            v["answers_differ_from_grid_%d" % ref["grid"]] = int(sum(
                a != b for a, b in zip(v["answers"], ref["readers"][model]["answers"])))
    for r in rows:
        for v in r["readers"].values():
            del v["answers"]
    report = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
              "load_average_before": [round(v, 2) for v in os.getloadavg()], "images": len(pngs), "rows": rows}
    lines = [f"MNIST framing per work grid, {len(pngs):,} MNIST test digits as PNG bytes, measured {report['when']} "
             f"on {report['machine']} by `benchmarks/framing_grid.py` (framing time: best of {args.repeats}, one "
             f"process, load average before {report['load_average_before'][0]}).", "",
             "| grid | framing µs/image | mean abs diff to MNIST | median centre-of-mass distance to MNIST's (px) | "
             + " | ".join(f"{m}{' --charset ' + c if c else ''} accuracy (answers differ from grid {ref['grid']})"
                          for m, c in READERS) + " |",
             "|---:|---:|---:|---:|" + "---:|" * len(READERS)]
    for r in rows:
        cells = [f"{v['accuracy']:.2%} ({v['answers_differ_from_grid_%d' % ref['grid']]})" for v in r["readers"].values()]
        lines.append(f"| {r['grid']} | {r['us_per_image']:.0f} | {r['mean_abs_diff_to_mnist']:.4f} | "
                     f"{r['median_centre_distance_px']:.3f} | " + " | ".join(cells) + " |")
    md = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "framing_grid.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "framing_grid.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
