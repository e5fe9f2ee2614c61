"""Reading a folder: `scrawl predict --json FOLDER` over the 10,000 MNIST test digits as PNG files.

Writes the MNIST test set (`scrawl.data.load_dataset("mnist", "test")`) as PNG files, dark ink on white
like a scan, into a temporary folder, then times `scrawl predict --json FOLDER > answers` as a user runs
it (a subprocess: start-up, model loading and worker start included) for each runtime: torch, onnx (the
float export), and auto (the command with no --runtime, as a user runs it: for the bundled digits
model, ONNX Runtime with its bundled int8 export, src/scrawl/assets/digits-int8.onnx):
- idle: nothing else running (the load average before each run is recorded: run it on an idle machine);
- busy: with a CPU-heavy competitor process running (a NumPy matrix-multiply loop, one BLAS thread
  unless --competitor-threads says otherwise), started a second before and stopped after.
Each figure is the best of --repeats runs. The answers are checked: one JSON line per image, in input
order, the accuracy against the MNIST labels, and how many labels differ from the torch run's. Bars (issue 14): >= 1,500 images/s idle, and at least
half of that, 750 images/s, with the competitor running. Writes benchmarks/results/predict_folder.{json,md};
--check exits 1 when a bar is missed.

    python benchmarks/predict_folder.py [--images 10000] [--runtimes torch,onnx,auto] [--model digits]
                                        [--repeats 1] [--competitor-threads 1] [--data-dir DIR] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

IDLE_BAR = 1500.0  # images/s on an idle machine
BUSY_BAR = IDLE_BAR / 2  # with a CPU-heavy competitor

COMPETITOR = """
import sys, time
import numpy as np
a = np.random.default_rng(0).random((384, 384))
print("ready", flush=True)
while True:
    a = a @ a
    a /= np.abs(a).max()
"""


def write_pngs(folder: Path, n: int, data_dir: str | None) -> list[int]:
    """The first n MNIST test digits as folder/NNNNN.png (dark ink on white); their labels."""
    import cv2
    import numpy as np

    from scrawl.data import load_dataset

    test = load_dataset("mnist", "test", data_dir, download=False)
    images = np.asarray(test.images)[:n]
    labels = [int(x) for x in np.asarray(test.labels)[:n]]
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:05d}.png"), 255 - image)
    return labels


def start_competitor(threads: int) -> subprocess.Popen:
    env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    proc = subprocess.Popen([sys.executable, "-c", COMPETITOR], stdout=subprocess.PIPE, text=True, env=env)
    proc.stdout.readline()  # "ready": NumPy is imported and the loop starts
    time.sleep(1.0)  # let it take its share of the CPUs
    return proc


def timed_run(folder: Path, runtime: str, model: str, labels: list[int]) -> dict:
    """One `scrawl predict --json FOLDER` run: seconds, images/s, and what its answers say."""
    cmd = [sys.executable, "-m", "scrawl", "predict", "--json", "--model", model, str(folder)]
    cmd += [] if runtime == "auto" else ["--runtime", runtime]
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - t0
        out.seek(0)
        lines = [json.loads(line) for line in out]
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    expected = [str(folder / f"{i:05d}.png") for i in range(len(labels))]
    if [d["path"] for d in lines] != expected:
        raise SystemExit("the answers are not one per image in input order")
    right = sum(d.get("label") == str(y) for d, y in zip(lines, labels))
    return {"seconds": round(seconds, 3), "images_per_s": round(len(labels) / seconds, 1), "answers": len(lines),
            "errors": sum("error" in d for d in lines), "uncertain": sum(bool(d.get("uncertain")) for d in lines),
            "accuracy": round(right / len(labels), 4), "loadavg_before": load,
            "answers_seen": [(d.get("label"), d.get("confidence"), bool(d.get("uncertain"))) for d in lines]}


def measure(folder: Path, runtime: str, load: str, args, labels: list[int]) -> dict:
    competitor = start_competitor(args.competitor_threads) if load == "busy" else None
    try:
        runs = [timed_run(folder, runtime, args.model, labels) for _ in range(args.repeats)]
    finally:
        if competitor is not None:
            competitor.terminate()
            competitor.wait(10)
    best = max(runs, key=lambda r: r["images_per_s"])
    row = {"runtime": runtime, "load": load, "images": len(labels), **best,
           "all_images_per_s": [r["images_per_s"] for r in runs],
           "runs_agree": all([a[0] for a in r["answers_seen"]] == [a[0] for a in best["answers_seen"]] for r in runs)}
    print(f"{runtime:>5}, {load}: {row['images_per_s']:,.0f} images/s ({row['seconds']:.2f} s, "
          f"load average before {row['loadavg_before'][0]})", flush=True)
    return row


def compare_with_torch(row: dict, seen: list, torch: list) -> None:
    """How the run's answers differ from the torch run's: labels, and the largest confidence difference;
    each image whose label differs, with both answers (label, confidence, uncertain)."""
    row["labels_other_than_torch"] = sum(a[0] != b[0] for a, b in zip(seen, torch))
    row["max_confidence_diff_to_torch"] = round(max((abs(a[1] - b[1]) for a, b in zip(seen, torch)
                                                     if a[1] is not None and b[1] is not None), default=0.0), 4)
    row["other_labels"] = [{"image": i, "answer": list(a), "torch": list(b)}
                           for i, (a, b) in enumerate(zip(seen, torch)) if a[0] != b[0]]


def bars(runs: list[dict]) -> list[dict]:
    """Issue 14's bars are for `scrawl predict` as a user runs it: the auto rows (every row without one)."""
    out = []
    for r in [r for r in runs if r["runtime"] == "auto"] or runs:
        limit = IDLE_BAR if r["load"] == "idle" else BUSY_BAR
        out.append({"bar": f"{r['runtime']}, {'idle' if r['load'] == 'idle' else 'with a CPU-heavy competitor'}",
                    "limit": f">= {limit:,.0f} images/s", "measured": f"{r['images_per_s']:,.0f} images/s",
                    "ok": r["images_per_s"] >= limit})
    return out


def markdown(r: dict) -> str:
    lines = [f"`scrawl predict --json FOLDER` over {r['images']:,} MNIST test digits as PNG files (dark ink on "
             f"white), measured {r['when']} on {r['machine']} by `benchmarks/predict_folder.py`: model "
             f"{r['model']}, wall time of the whole command (start-up included), best of {r['repeats']}. "
             f"\"busy\": with a CPU-heavy competitor running (a NumPy matrix-multiply loop, "
             f"{r['competitor_threads']} thread(s)).", "",
             "| runtime | load | images/s | every run | seconds | load average before | errors | uncertain | accuracy "
             "| labels other than torch's |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for x in r["runs"]:
        every = ", ".join(f"{v:,.0f}" for v in x["all_images_per_s"])
        lines.append(f"| {x['runtime']} | {x['load']} | {x['images_per_s']:,.0f} | {every} | {x['seconds']:.2f} | "
                     f"{x['loadavg_before'][0]} | {x['errors']} | {x['uncertain']} | {x['accuracy']:.2%} | "
                     f"{x.get('labels_other_than_torch', '-')} |")
    for x in r["runs"]:
        if x.get("other_labels"):
            told = "; ".join(f"image {d['image']}: {d['answer'][0]} at {d['answer'][1]:.0%}"
                             f"{' (uncertain)' if d['answer'][2] else ''} against torch's {d['torch'][0]} at "
                             f"{d['torch'][1]:.0%}{' (uncertain)' if d['torch'][2] else ''}" for d in x["other_labels"])
            lines.append(f"\n{x['runtime']}, {x['load']}: other labels than torch's: {told}; confidences at most "
                         f"{x['max_confidence_diff_to_torch']:.3f} from torch's.")
    lines += ["", "| bar | limit | measured | |", "|---|---:|---:|---|"]
    for b in r["bars"]:
        lines.append(f"| {b['bar']} | {b['limit']} | {b['measured']} | {'pass' if b['ok'] else '**FAIL**'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10000, help="how many MNIST test digits (default: all 10,000)")
    ap.add_argument("--runtimes", default="torch,onnx,auto", help="auto: no --runtime, as a user runs it")
    ap.add_argument("--model", default="digits", help="bundled model name (default: digits)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per figure; the best is kept")
    ap.add_argument("--competitor-threads", type=int, default=1, help="BLAS threads of the competitor")
    ap.add_argument("--data-dir", default=os.environ.get("SCRAWL_DATA"),
                    help="datasets folder holding MNIST test")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--check", action="store_true", help="exit 1 if a bar is missed")
    args = ap.parse_args(argv)
    report = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
              "model": args.model, "repeats": args.repeats, "competitor_threads": args.competitor_threads,
              "runs": []}
    with tempfile.TemporaryDirectory(prefix="scrawl-predict-folder-") as tmp:
        folder = Path(tmp)
        labels = write_pngs(folder, args.images, args.data_dir)
        report["images"] = len(labels)
        for runtime in args.runtimes.split(","):
            for load in ("idle", "busy"):
                report["runs"].append(measure(folder, runtime, load, args, labels))
    torch = next((r["answers_seen"] for r in report["runs"] if r["runtime"] == "torch"), None)
    for r in report["runs"]:
        seen = r.pop("answers_seen")
        if torch is not None:
            compare_with_torch(r, seen, torch)
    report["bars"] = bars(report["runs"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict_folder.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (args.out / "predict_folder.md").write_text(md)
    print(md)
    return 1 if args.check and not all(b["ok"] for b in report["bars"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
