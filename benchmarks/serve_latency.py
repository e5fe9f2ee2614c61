"""Latency of the web API, measured against a real `scrawl serve` on 127.0.0.1.

Starts the server as a subprocess and measures:
- start-up: from launching the process to the first answered /api/predict (imports, model load, bind);
- /api/predict of a 280x280 canvas PNG (a '7' on a transparent canvas, as the page sends it) with one
  client on a keep-alive connection, then with 8 concurrent clients (threads, one connection each);
- /api/read?model=digits (the segmenter) of a 640x320 canvas with three digits, one client (for reference);
- /api/read with the line model of an 800x200 canvas with three words in OpenCV's script font (italic
  print, about 75 px high: this measures time, not accuracy, and needs no data), one client: as it is,
  and with the word prior (`lexicon=true`, what the page sends for words); what it read is recorded.
Latency = from sending the request to having read the whole answer, on the client.

Writes benchmarks/results/serve_latency.json and serve_latency.md. Bars (issue #3): predict p50 <= 5 ms
and p99 <= 20 ms with one client, start-up <= 3 s; (issue 13) the 3-word read p50 <= 40 ms with one
client; `--check` exits 1 when one is missed.

    .venv/bin/python benchmarks/serve_latency.py [--requests 1000] [--per-client 250] [--check]

The clients run on the same machine as the server, so on a small machine they compete for its cores:
the figures are an upper bound, and noisy if anything else is running.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
BARS = {"predict_p50_ms": 5.0, "predict_p99_ms": 20.0, "startup_s": 3.0, "read_words_p50_ms": 40.0}
WORDS = "the red fox"  # the 3-word canvas's text


def canvas_png(text: str, size: tuple[int, int], pen: int) -> bytes:
    """Digits drawn as strokes on a transparent canvas (RGBA PNG), like the page's pad."""
    shapes = {
        "7": [[(0.05, 0.05), (0.95, 0.05), (0.4, 1.0)]],
        "4": [[(0.55, 0.0), (0.05, 0.65), (0.95, 0.65)], [(0.7, 0.3), (0.7, 1.0)]],
        "1": [[(0.35, 0.12), (0.55, 0.0), (0.55, 1.0)]],
    }
    w, h = size
    img = np.zeros((h, w, 4), np.uint8)
    cell = w / len(text)
    for i, ch in enumerate(text):
        x0, y0, cw, chh = i * cell + 0.25 * cell, 0.18 * h, 0.5 * cell, 0.64 * h
        for stroke in shapes[ch]:
            pts = np.array([(x0 + px * cw, y0 + py * chh) for px, py in stroke], np.int32)
            cv2.polylines(img, [pts], False, (17, 24, 39, 255), pen, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    return buf.tobytes()


def canvas_words(text: str = WORDS, size: tuple[int, int] = (800, 200), pen: int = 4) -> bytes:
    """Words in OpenCV's script font, centred on a transparent canvas (RGBA PNG), like the page's pad."""
    w, h = size
    img = np.zeros((h, w, 4), np.uint8)
    font, scale = cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 3.0
    (tw, th), _ = cv2.getTextSize(text, font, scale, pen)
    cv2.putText(img, text, ((w - tw) // 2, (h + th) // 2), font, scale, (17, 24, 39, 255), pen, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    return buf.tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": "image/png"})
    r = conn.getresponse()
    return r.status, r.read()


def start_server(port: int, timeout: float = 60.0, runtime: str = "torch",
                 model: str | None = None) -> tuple[subprocess.Popen, float]:
    """Launch `scrawl serve --runtime RUNTIME [--model MODEL]`; seconds until the first predict is answered.
    Its output (one access-log line per request) goes to a temporary file, not a pipe: nobody reads a
    pipe while the clients run, and a full one would stop the server mid-benchmark."""
    body = canvas_png("7", (280, 280), 18)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "scrawl", "serve", "--port", str(port), "--runtime", runtime]
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd + (["--model", model] if model else []), stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log  # closed with the process object
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            status, _ = post(conn, "/api/predict", body)
            conn.close()
            if status == 200:
                return proc, time.perf_counter() - t0
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() - t0 > timeout:
            proc.kill()
            log.seek(0)
            raise SystemExit(f"scrawl serve did not answer: {log.read()[-3000:]}")
        time.sleep(0.005)


def run_client(port: int, path: str, body: bytes, n: int, warmup: int, out: list[float], errors: list[str]):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for i in range(warmup + n):
            t = time.perf_counter()
            status, data = post(conn, path, body)
            dt = time.perf_counter() - t
            if status != 200:
                errors.append(f"{status}: {data[:200]!r}")
            elif i >= warmup:
                out.append(dt * 1000)
    finally:
        conn.close()


def summarise(name: str, lat: list[float], wall: float, clients: int) -> dict:
    a = np.array(lat)
    return {"scenario": name, "clients": clients, "requests": len(lat),
            "p50_ms": round(float(np.percentile(a, 50)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3),
            "mean_ms": round(statistics.fmean(lat), 3), "throughput_rps": round(len(lat) / wall, 1)}


def scenario(port, name, path, body, clients, per_client, warmup) -> dict:
    lat_lists = [[] for _ in range(clients)]
    errors: list[str] = []
    threads = [threading.Thread(target=run_client, args=(port, path, body, per_client, warmup, lat_lists[i], errors))
               for i in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    if errors:
        raise SystemExit(f"{name}: {len(errors)} failed requests, e.g. {errors[0]}")
    # Wall time includes the warm-up requests; count them for the throughput too.
    lat = [x for lst in lat_lists for x in lst]
    result = summarise(name, lat, wall, clients)
    result["throughput_rps"] = round(clients * (per_client + warmup) / wall, 1)
    return result


def markdown(report: dict) -> str:
    lines = [
        "# Web API latency (`scrawl serve`)",
        "",
        f"Measured {report['when']} on {report['machine']} by `benchmarks/serve_latency.py` (clients on the same "
        f"machine as the server; load average before the run: {report['loadavg_before']}).",
        "",
        f"Server start to first answered predict: **{report['startup_s']:.2f} s**",
        "",
        "| scenario | clients | requests | p50 ms | p90 ms | p99 ms | max ms | mean ms | req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["scenarios"]:
        lines.append(f"| {r['scenario']} | {r['clients']} | {r['requests']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['max_ms']:.2f} | {r['mean_ms']:.2f} | {r['throughput_rps']:.0f} |")
    lines += [f"\n{r['scenario']}: read {r['read']!r} (written: {WORDS!r})" for r in report["scenarios"] if "read" in r]
    lines += ["", "| bar | limit | measured | |", "|---|---:|---:|---|"]
    for b in report["bars"]:
        lines.append(f"| {b['bar']} | {b['limit']} | {b['measured']} | {'pass' if b['ok'] else '**FAIL**'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1000, help="single-client predict requests (default 1000)")
    ap.add_argument("--per-client", type=int, default=250, help="requests per client with 8 clients (default 250)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=30, help="untimed requests per client first")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--check", action="store_true", help="exit 1 if a bar is missed")
    args = ap.parse_args(argv)

    port = free_port()
    load_before = [round(x, 2) for x in os.getloadavg()]
    proc, startup = start_server(port)
    try:
        one = canvas_png("7", (280, 280), 18)
        three = canvas_png("417", (640, 320), 13)
        results = [
            scenario(port, "predict 280x280 canvas PNG", "/api/predict", one, 1, args.requests, args.warmup),
            scenario(port, "predict 280x280 canvas PNG", "/api/predict", one, args.clients, args.per_client, args.warmup),
            scenario(port, "read 640x320 canvas, 3 digits", "/api/read?model=digits", three, 1, max(50, args.requests // 5),
                     args.warmup),
        ]
        words = canvas_words()
        for name, path in (("read 800x200 canvas, 3 words, line model", "/api/read?model=line"),
                           ("the same with the word prior", "/api/read?model=line&lexicon=true")):
            results.append(scenario(port, name, path, words, 1, max(50, args.requests // 5), args.warmup))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            results[-1]["read"] = json.loads(post(conn, path, words)[1])["text"]
            conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
    single = results[0]
    bars = [
        {"bar": "predict p50, 1 client", "limit": "<= 5 ms", "measured": f"{single['p50_ms']:.2f} ms",
         "ok": single["p50_ms"] <= BARS["predict_p50_ms"]},
        {"bar": "predict p99, 1 client", "limit": "<= 20 ms", "measured": f"{single['p99_ms']:.2f} ms",
         "ok": single["p99_ms"] <= BARS["predict_p99_ms"]},
        {"bar": "start to first answer", "limit": "<= 3 s", "measured": f"{startup:.2f} s",
         "ok": startup <= BARS["startup_s"]},
    ]
    for r in results[3:]:
        bars.append({"bar": f"{r['scenario']}: p50, 1 client", "limit": "<= 40 ms", "measured": f"{r['p50_ms']:.2f} ms",
                     "ok": r["p50_ms"] <= BARS["read_words_p50_ms"]})
    report = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
        "loadavg_before": load_before,
        "startup_s": round(startup, 3),
        "scenarios": results,
        "bars": bars,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (args.out / "serve_latency.md").write_text(md)
    print(md)
    print(f"wrote {args.out / 'serve_latency.json'} and {args.out / 'serve_latency.md'}")
    return 1 if args.check and not all(b["ok"] for b in bars) else 0


if __name__ == "__main__":
    raise SystemExit(main())
