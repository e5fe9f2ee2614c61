"""Inference speed of the bundled digit models: PyTorch and ONNX Runtime backends, against the seed's Keras model.

For each bundled digit model (digits: scrawlnet; digits-lite: fastnet) and each backend
(`Recognizer(model, runtime=...)` and `scrawl serve --model M --runtime ...`; "onnx-int8" is ONNX
Runtime with the model exported by `scrawl export M --int8`, made here into runs/int8/):
- Python API, one thread (p50/p99): `Recognizer.predict` of a 280x280 canvas drawing, given as a
  decoded RGBA array (framing + model) and as its PNG bytes (decoding + framing + model);
- batch throughput: framed 28x28 images, batches of 1000, all cores (images/s) — the model and its softmax
  (`Recognizer.probabilities`), like Keras's `model.predict(x, batch_size=1000)`;
- HTTP: /api/predict of the same PNG against a real `scrawl serve` on 127.0.0.1, 1 and 8 clients
  (benchmarks/serve_latency.py's client), server start to first answer, and the server's peak
  resident memory (VmHWM) after the run.
- accuracy on the MNIST test set (when the data is there: --data-dir or $SCRAWL_DATA), so a faster
  backend shows what it costs;
Keras (benchmarks/keras_seed.py, when TensorFlow is installed): `model.predict` and a direct call on one
image, and batch throughput. Writes benchmarks/results/inference.{json,md}; `--check` exits 1 when a bar
is missed.

    python benchmarks/inference.py [--models digits,digits-lite] [--runtimes torch,onnx,onnx-int8]
                                   [--seconds 5] [--data-dir DIR] [--no-keras] [--check]

Clients and server share the machine's cores, so the HTTP figures are an upper bound.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_latency import canvas_png, free_port, scenario, start_server  # noqa: E402

# Issue #5's bars (ONNX Runtime backend); the batch bar is relative to Keras's figure.
BARS = {"api_p50_ms": 1.0, "http_p50_ms": 3.0, "startup_s": 2.0, "rss_mb": 400.0, "batch_x_keras": 3.0}


def timed(fn, seconds: float) -> dict:
    for _ in range(50):  # warm-up
        fn()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"p50_ms": round(1000 * statistics.median(times), 4),
            "p99_ms": round(1000 * times[int(0.99 * (len(times) - 1))], 4), "n": len(times)}


def api_figures(model: str, runtime: str, seconds: float, data_dir: str | None) -> dict:
    """In a fresh subprocess, so that one backend's imports (torch) do not weigh on the other's."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(HERE)!r})
from inference import timed
from serve_latency import canvas_png
import cv2
import numpy as np
from scrawl.runtime.recognizer import Recognizer
png = canvas_png("7", (280, 280), 18)
rgba = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
def recognizer(threads):
    if {runtime!r} == "torch":  # torch's threads are process-wide
        import torch
        torch.set_num_threads(threads)
        return Recognizer({model!r}, runtime="torch")
    return Recognizer({model!r}, runtime="onnx", threads=threads)
cv2.setNumThreads(1)  # one thread for one image, like `scrawl serve`
rec = recognizer(1)
assert rec.predict(png).label == rec.predict(rgba).label == "7"
api = timed(lambda: rec.predict(rgba), {seconds})  # a decoded canvas (RGBA array): framing + model
api_png = timed(lambda: rec.predict(png), {seconds})  # the PNG's bytes: decoding + framing + model
rec = recognizer({os.cpu_count()})
batch = np.random.default_rng(0).random((1000, 28, 28), dtype=np.float32)
rec.probabilities(batch)
rates = []
for _ in range(15):  # the median pass, like Keras's figure
    t0 = time.perf_counter()
    rec.probabilities(batch)
    rates.append(len(batch) / (time.perf_counter() - t0))
rates.sort()
torch_imported = "torch" in sys.modules  # before the test set is loaded (scrawl.data uses torch)
accuracy = None
if {data_dir!r}:
    from scrawl.data import load_dataset
    test = load_dataset("mnist", "test", {data_dir!r}, download=False)
    x = test.images.numpy().astype(np.float32) / 255
    # the answer's label, as scrawl evaluate counts it: never the "not a character" class
    answers = [p.label for i in range(0, len(x), 1000) for p in rec.predict_framed(x[i:i + 1000])]
    accuracy = float(np.mean(np.array(answers) == test.labels.numpy().astype(str)))
print(json.dumps({{"api": api, "api_png": api_png, "batch_images_per_s": rates[len(rates) // 2],
                  "batch_images_per_s_range": [rates[0], rates[-1]], "mnist_test_accuracy": accuracy,
                  "torch_imported": torch_imported}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"API benchmark ({model}, {runtime}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def int8_model(model: str, data_dir: str | None) -> str:
    """`scrawl export MODEL --int8` into runs/int8/ (calibrated on MODEL's training data); its path."""
    out = HERE.parent / "runs" / "int8" / f"{model}-int8.onnx"
    cmd = [sys.executable, "-m", "scrawl", "export", model, "--int8", "--out", str(out)]
    proc = subprocess.run(cmd + (["--data-dir", data_dir] if data_dir else []), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return str(out)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def http_figures(model: str, runtime: str, requests: int, per_client: int) -> dict:
    port = free_port()
    proc, startup = start_server(port, runtime=runtime, model=model)
    try:
        png = canvas_png("7", (280, 280), 18)
        one = scenario(port, "predict", "/api/predict", png, 1, requests, 30)
        eight = scenario(port, "predict", "/api/predict", png, 8, per_client, 30)
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    return {"startup_s": round(startup, 3), "peak_rss_mb": round(rss, 1), "one_client": one, "eight_clients": eight}


def keras_figures(seconds: float) -> dict | None:
    if importlib.util.find_spec("tensorflow") is None:
        print("TensorFlow is not installed: no Keras rows (pip install -c constraints.txt -e '.[bench]')")
        return None
    proc = subprocess.run([sys.executable, str(HERE / "keras_seed.py"), "infer", "--seconds", str(seconds)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"Keras benchmark failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def multiply_adds(models: list[str]) -> dict:
    """Multiply-adds per 28x28 image of each bundled model's network and of the seed's network
    (scrawl.models.Baseline is its PyTorch twin), counted from the layers' output shapes."""
    import torch

    from scrawl.runtime.checkpoint import load_checkpoint
    from scrawl.runtime.recognizer import bundled_path
    from scrawl.models import build_model, count_parameters

    def count(model) -> int:
        total = 0

        def hook(mod, inp, out):
            nonlocal total
            if isinstance(mod, torch.nn.Conv2d):
                k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
                total += out[0].numel() * k
            elif isinstance(mod, torch.nn.Linear):
                total += mod.in_features * mod.out_features

        handles = [m.register_forward_hook(hook) for m in model.modules()]
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 1, 28, 28))
        for h in handles:
            h.remove()
        return total

    out = {}
    for name in models:
        ck = load_checkpoint(bundled_path(name))
        net = ck.build_model()
        out[name] = {"arch": ck.meta["arch"], "parameters": count_parameters(net), "multiply_adds": count(net)}
    seed = build_model("baseline", num_classes=10)
    out["seed_keras"] = {"arch": "baseline", "parameters": count_parameters(seed), "multiply_adds": count(seed)}
    return out


def markdown(r: dict) -> str:
    lines = [f"Inference with the bundled digit models, measured {r['when']} on {r['machine']} by "
             f"`benchmarks/inference.py` (load average before: {r['loadavg_before']}).", "",
             "| backend | API p50 / p99 ms, RGBA canvas array | API p50 / p99 ms, PNG bytes | batch images/s | "
             "HTTP p50 / p99 ms, 1 client | HTTP p50 / p99 ms, 8 clients | server start s | server peak RSS MB | "
             "MNIST test accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, b in r["backends"].items():
        h = b["http"]
        lines.append(f"| Scrawl {name.replace('/', ', ')} | {b['api']['p50_ms']:.3f} / {b['api']['p99_ms']:.3f} | "
                     f"{b['api_png']['p50_ms']:.3f} / {b['api_png']['p99_ms']:.3f} | "
                     f"{b['batch_images_per_s']:,.0f} | {h['one_client']['p50_ms']:.2f} / {h['one_client']['p99_ms']:.2f} | "
                     f"{h['eight_clients']['p50_ms']:.2f} / {h['eight_clients']['p99_ms']:.2f} | {h['startup_s']:.2f} | "
                     f"{h['peak_rss_mb']:.0f} | {_percent(b.get('mnist_test_accuracy'))} |")
    k = r.get("keras")
    if k:
        lines.append(f"| Keras {k['tensorflow']} `model.predict` (1 image, no preprocessing) | "
                     f"{k['predict']['p50_ms']:.2f} / {k['predict']['p99_ms']:.2f} | | {k['batch_images_per_s']:,.0f} | | | | | |")
        lines.append(f"| Keras direct call `model(x)` (1 image) | {k['direct']['p50_ms']:.2f} / {k['direct']['p99_ms']:.2f} "
                     f"| | | | | | | |")
    ranges = [f"{name.replace('/', ', ')} {b['batch_images_per_s_range'][0]:,.0f}–{b['batch_images_per_s_range'][1]:,.0f}"
              for name, b in r["backends"].items() if "batch_images_per_s_range" in b]
    if k and "batch_images_per_s_range" in k:
        ranges.append(f"Keras {k['batch_images_per_s_range'][0]:,.0f}–{k['batch_images_per_s_range'][1]:,.0f}")
    if ranges:
        lines += ["", "Batch images/s is the median of 15 timed batches of 1,000 images for Scrawl, and of 7 timed "
                  "`model.predict` passes over 10,000 images (batches of 1,000) for Keras; the timings ranged: "
                  + "; ".join(ranges) + "."]
    if r.get("models"):
        k = r["models"]["seed_keras"]
        work = [f"{name} ({m['arch']}, {m['parameters']:,} parameters) {m['multiply_adds'] / 1e6:.1f} M"
                for name, m in r["models"].items() if name != "seed_keras"]
        lines += ["", f"Multiply-adds per image: {'; '.join(work)}; the seed's network ({k['parameters']:,} parameters) "
                  f"{k['multiply_adds'] / 1e6:.1f} M."]
    if r["bars"]:
        lines += ["", "| bar | limit | measured | |", "|---|---:|---:|---|"]
        for b in r["bars"]:
            lines.append(f"| {b['bar']} | {b['limit']} | {b['measured']} | {'pass' if b['ok'] else '**FAIL**'} |")
    return "\n".join(lines) + "\n"


def _percent(x) -> str:
    return "" if x is None else f"{x:.2%}"


def bars(r: dict) -> list[dict]:
    """Issue #5's bars for each model's ONNX Runtime backend."""
    out = []
    k = r.get("keras")
    for name, b in r["backends"].items():
        model, runtime = name.split("/")
        if not runtime.startswith("onnx"):
            continue
        h, tag = b["http"], f"({model}, ONNX Runtime{' int8' if runtime == 'onnx-int8' else ''})"
        out += [
            {"bar": f"API p50, 1 decoded 280x280 canvas, framing included {tag}", "limit": f"<= {BARS['api_p50_ms']} ms",
             "measured": f"{b['api']['p50_ms']:.3f} ms", "ok": b["api"]["p50_ms"] <= BARS["api_p50_ms"]},
            {"bar": f"HTTP predict p50, 1 client {tag}", "limit": f"<= {BARS['http_p50_ms']} ms",
             "measured": f"{h['one_client']['p50_ms']:.2f} ms", "ok": h["one_client"]["p50_ms"] <= BARS["http_p50_ms"]},
            {"bar": f"serve start to first answer {tag}", "limit": f"<= {BARS['startup_s']} s",
             "measured": f"{h['startup_s']:.2f} s", "ok": h["startup_s"] <= BARS["startup_s"]},
            {"bar": f"serve peak RSS {tag}", "limit": f"<= {BARS['rss_mb']:.0f} MB",
             "measured": f"{h['peak_rss_mb']:.0f} MB", "ok": h["peak_rss_mb"] <= BARS["rss_mb"]},
        ]
        if k:
            ratio = b["batch_images_per_s"] / k["batch_images_per_s"]
            out.append({"bar": f"batch throughput vs Keras {tag}", "limit": f">= {BARS['batch_x_keras']}x",
                        "measured": f"{ratio:.1f}x", "ok": ratio >= BARS["batch_x_keras"]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="digits,digits-lite", help="bundled models to measure")
    ap.add_argument("--runtimes", default="torch,onnx,onnx-int8")
    ap.add_argument("--data-dir", default=os.environ.get("SCRAWL_DATA"),
                    help="datasets folder: MNIST test for the accuracy column, training data for int8 calibration")
    ap.add_argument("--seconds", type=float, default=5.0, help="time spent on each API latency measurement")
    ap.add_argument("--requests", type=int, default=1000, help="HTTP requests with one client")
    ap.add_argument("--per-client", type=int, default=250, help="HTTP requests per client with 8 clients")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--check", action="store_true", help="exit 1 if a bar is missed")
    ap.add_argument("--render", action="store_true", help="only rewrite inference.md from inference.json")
    args = ap.parse_args(argv)
    if args.render:
        report = json.loads((args.out / "inference.json").read_text())
        report.setdefault("models", multiply_adds(sorted({n.split("/")[0] for n in report["backends"]})))
        (args.out / "inference.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "inference.md").write_text(markdown(report))
        print(markdown(report))
        return 0
    from datetime import datetime, timezone

    report = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
              "loadavg_before": [round(x, 2) for x in os.getloadavg()], "backends": {}}
    models = args.models.split(",")
    for model in models:
        for runtime in args.runtimes.split(","):
            target, engine = model, runtime
            if runtime == "onnx-int8":
                target, engine = int8_model(model, args.data_dir), "onnx"
            fig = api_figures(target, engine, args.seconds, args.data_dir)
            fig["http"] = http_figures(target, engine, args.requests, args.per_client)
            report["backends"][f"{model}/{runtime}"] = fig
            print(f"{model}, {runtime}: API p50 {fig['api']['p50_ms']:.3f} ms, batch {fig['batch_images_per_s']:,.0f} img/s, "
                  f"HTTP p50 {fig['http']['one_client']['p50_ms']:.2f} ms, start {fig['http']['startup_s']:.2f} s, "
                  f"RSS {fig['http']['peak_rss_mb']:.0f} MB", flush=True)
    report["keras"] = None if args.no_keras else keras_figures(args.seconds)
    report["models"] = multiply_adds(models)
    report["bars"] = bars(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inference.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (args.out / "inference.md").write_text(md)
    print(md)
    return 1 if args.check and not all(b["ok"] for b in report["bars"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
