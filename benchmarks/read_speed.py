"""Reading speed of a line model: one line of handwriting 64 px high and 1,000 px wide, one CPU thread.

The line is composed from the bundled sample digits (src/scrawl/assets/samples, framed as MNIST digits)
by scrawl.data.synth.compose_line: digits in groups with spaces, some touching, slanted and on a
drifting baseline, laid out 64 px high (ink 80% of it) and scaled to exactly 1,000 px wide (by at most
one digit's width), dark ink on white like a scan. For each runtime (onnx: ONNX Runtime with the
exported .onnx, 1 intra-op thread; onnx-int8: the same with `scrawl export MODEL --int8`'s model, made
into runs/int8/ (it needs the line data for its check); torch: PyTorch with torch.set_num_threads(1)), in a
fresh process so one runtime's imports do not weigh on the other, after --warmup runs, --runs timings of:
- framing: the image -> ink map -> lines -> the framed line (what `Recognizer.read` does before the model);
  skew: the part of it that estimates the line's skew (`vision.skew.ink_skew` of the ink map), which
  every line pays whether or not it then needs turning;
- forward: the model alone on that framed line (`Recognizer.logits` of (1, 1, 32, W));
- read: the whole `Recognizer.read(image)` (framing + model + decoding, with the default n-best: greedy
  and a prefix beam search); read_top1: the same with top_k=1 (greedy decoding only).
OpenCV also runs on one thread. Median and p90 per figure. The bar: the onnx read, median, <= 15 ms.
A model that reads no text in the line (an untrained placeholder) still does all the work of a read,
which then ends in "nothing legible": the timing counts it, and the result records that no text came.
Writes benchmarks/results/read_speed.json; --check exits 1 when the bar is missed.

    python benchmarks/read_speed.py [--model line] [--runtimes onnx,onnx-int8,torch] [--runs 50] [--warmup 10]
                                    [--data-dir DIR] [--check]

Run it on an idle machine: the load average before each runtime's runs is recorded.
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

import numpy as np

HERE = Path(__file__).resolve().parent
BAR_MS = 15.0  # a 64x1000 line read with one thread in ONNX Runtime (median)
HEIGHT, WIDTH = 64, 1000


def make_line(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> tuple[np.ndarray, str]:
    """(uint8 (height, width) dark ink on white, its text): sample digits composed into one line."""
    import cv2

    from scrawl.data.strokes import fit_to_height
    from scrawl.data.synth import GlyphBank, compose_line
    from scrawl.runtime.files import sample_images
    from scrawl.vision import frame

    samples = sample_images()
    glyphs = np.stack([np.round(frame(p) * 255).astype(np.uint8) for p in samples])
    bank = GlyphBank(glyphs, [p.name[0] for p in samples])  # the samples are named by their digit
    rng = np.random.default_rng(seed)
    text, group = "", int(rng.integers(2, 6))
    while True:  # one digit at a time, so the line overshoots the width by at most one digit
        if group == 0:
            text, group = text + " ", int(rng.integers(2, 6))
        text, group = text + bank.chars[int(rng.integers(len(bank.chars)))], group - 1
        line = fit_to_height(compose_line(text, bank, np.random.default_rng(seed), height=None), height)
        if line.shape[1] >= width:
            break
    line = cv2.resize(line, (width, height), interpolation=cv2.INTER_AREA)
    return 255 - line, text


def timings(fn, runs: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": round(float(np.median(times)), 3), "p90_ms": round(float(np.percentile(times, 90)), 3),
            "min_ms": round(min(times), 3), "runs": runs}


def worker(runtime: str, model: str, image_path: str, runs: int, warmup: int) -> dict:
    """One runtime's figures, in this (fresh) process, on one thread."""
    import cv2

    cv2.setNumThreads(1)
    if runtime == "torch":  # torch's threads are process-wide
        import torch

        torch.set_num_threads(1)
    from scrawl.errors import EmptyImageError
    from scrawl.runtime.recognizer import Recognizer
    from scrawl.vision.framing import frame_line
    from scrawl.vision.ink import load_image
    from scrawl.vision.lines import split_lines
    from scrawl.vision.skew import ink_skew

    rec = Recognizer(model, runtime=runtime, threads=1 if runtime == "onnx" else None)
    image = cv2.imread(image_path, cv2.IMREAD_GRAYSCALE)

    def framing():
        return [frame_line(line.ink, rec.spec) for line in split_lines(load_image(image))]

    def read(top_k=None):
        try:
            return rec.read(image) if top_k is None else rec.read(image, top_k=top_k)
        except EmptyImageError as exc:  # the model read nothing: the work was done all the same
            return exc

    framed = framing()
    x = framed[0].image[None, None]
    ink = load_image(image)
    answer = read()
    figures = {name: timings(fn, runs, warmup) for name, fn in
               (("framing", framing), ("skew", lambda: ink_skew(ink)), ("forward", lambda: rec.logits(x)), ("read", read),
                ("read_top1", lambda: read(1)))}
    return {"runtime": runtime, "model_file": str(rec.path), "lines": len(framed), "framed_shape": list(x.shape),
            "frames": int(rec.logits(x).shape[1]), **figures,
            "text": answer.text if not isinstance(answer, Exception) else None,
            "error": str(answer) if isinstance(answer, Exception) else None,
            "torch_imported": "torch" in sys.modules}


def run_worker(runtime: str, args, image_path: Path) -> dict:
    model, engine = args.model, runtime
    if runtime == "onnx-int8":
        from inference import int8_model  # benchmarks/inference.py: `scrawl export MODEL --int8` into runs/int8/

        model, engine = int8_model(args.model, args.data_dir), "onnx"
    load = [round(x, 2) for x in os.getloadavg()]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", engine, "--model", model,
           "--image", str(image_path), "--runs", str(args.runs), "--warmup", str(args.warmup)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{runtime} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "runtime": runtime, "loadavg_before": load}


def table(report: dict) -> str:
    rows = ["| runtime | framing | of which the skew estimate | forward | read | read, top_k=1 | frames | text |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["runs"]:
        cell = lambda k: f"{r[k]['median_ms']:.2f} / {r[k]['p90_ms']:.2f}"  # noqa: E731
        text = repr(r["text"]) if r["text"] is not None else f"none ({r['error']})"
        rows.append(f"| {r['runtime']} | {cell('framing')} | {cell('skew')} | {cell('forward')} | {cell('read')} | "
                    f"{cell('read_top1')} | {r['frames']} | {text} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="line", help="bundled line model name, or a model file (a .pt for torch, "
                                                    "its exported .onnx for onnx: give one runtime then)")
    ap.add_argument("--runtimes", default="onnx,onnx-int8,torch")
    ap.add_argument("--data-dir", default=None, help="the line data, for onnx-int8's export check")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per figure (default: 50)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs first (default: 10)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--check", action="store_true", help="exit 1 if the bar is missed")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--image", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be at least 1 and --warmup at least 0")
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.image, args.runs, args.warmup)))
        return 0
    import cv2

    image, text = make_line()
    report = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
              "model": args.model, "image": {"height": HEIGHT, "width": WIDTH, "text": text},
              "threads": 1, "warmup": args.warmup, "figures": "milliseconds, median and p90", "runs": []}
    with tempfile.TemporaryDirectory(prefix="scrawl-read-speed-") as tmp:
        path = Path(tmp) / "line.png"
        cv2.imwrite(str(path), image)
        for runtime in [r.strip() for r in args.runtimes.split(",") if r.strip()]:
            report["runs"].append(run_worker(runtime, args, path))
    onnx = sorted((r for r in report["runs"] if r["runtime"].startswith("onnx")), key=lambda r: r["read"]["median_ms"])
    report["bar"] = {"what": "a 64x1000 line read (Recognizer.read) with one thread in ONNX Runtime, median",
                     "limit_ms": BAR_MS, "measured_ms": onnx[0]["read"]["median_ms"] if onnx else None,
                     "runtime": onnx[0]["runtime"] if onnx else None,
                     "ok": bool(onnx) and onnx[0]["read"]["median_ms"] <= BAR_MS}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "read_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"a {WIDTH}x{HEIGHT} line ({text!r}), one thread, ms median / p90 over {args.runs} runs:\n")
    print(table(report))
    b = report["bar"]
    print(f"\nbar: onnx read <= {BAR_MS:g} ms: {b['measured_ms']} ms ({b['runtime']}), {'pass' if b['ok'] else 'FAIL'}")
    return 1 if args.check and not b["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
