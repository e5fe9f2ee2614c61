"""Load test of `scrawl serve` on 127.0.0.1: many clients, good and bad requests mixed.

16 client threads (keep-alive connections) send 20,000 requests in all, bounded in time as well:
70% good `predict` (a digit on a 280x280 canvas), 10% good `read` (three digits), 20% bad (random
bytes, an empty body, bad JSON, a truncated PNG, a PNG declaring 50,000x50,000 pixels). Reports
failed good requests (must be 0), p50/p99 latency per kind, throughput, and the server's resident
memory after warm-up and at the end (growth must stay <= 50 MB). Writes benchmarks/results/load.{json,md}.

    python benchmarks/load.py [--requests 20000] [--clients 16] [--max-seconds 600]
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import random
import struct
import sys
import threading
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_latency import canvas_png, free_port, start_server  # noqa: E402  (same folder)

HERE = Path(__file__).resolve().parent
MAX_GROWTH_MB = 50.0


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def requests_mix() -> list[tuple[str, str, str, bytes, bool]]:
    """(kind, path, content type, body, is_good) and their weights in the mix."""
    seven = canvas_png("7", (280, 280), 18)
    return [
        ("predict", "/api/predict", "image/png", seven, True),
        ("read", "/api/read?model=digits", "image/png", canvas_png("741", (640, 320), 16), True),  # the segmenter, as measured
        ("bad: random bytes", "/api/predict", "image/png", bytes(random.Random(0).randbytes(3000)), False),
        ("bad: empty body", "/api/predict", "image/png", b"", False),
        ("bad: broken JSON", "/api/predict", "application/json", b'{"image": "data:image/png;base64,', False),
        ("bad: truncated PNG", "/api/predict", "image/png", seven[: len(seven) // 2], False),
        ("bad: decompression bomb", "/api/predict", "image/png", _png_declaring(50_000, 50_000), False),
    ]


WEIGHTS = [70, 10, 4, 4, 4, 4, 4]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=1000, help="requests before the memory baseline is taken")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    mix = requests_mix()
    rng = random.Random(1)
    plan = rng.choices(range(len(mix)), weights=WEIGHTS, k=args.requests)
    port = free_port()
    proc, startup = start_server(port)
    lock = threading.Lock()
    cursor = {"next": 0, "done": 0}
    lat: dict[str, list[float]] = {m[0]: [] for m in mix}
    failed_good: list[str] = []
    bad_statuses: dict[int, int] = {}
    shed = {"503": 0}
    rss: dict[str, float] = {}
    deadline = time.perf_counter() + args.max_seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = cursor["next"]
                cursor["next"] += 1
            if i >= len(plan) or time.perf_counter() > deadline:
                break
            kind, path, ctype, body, good = mix[plan[i]]
            t = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": ctype})
                r = conn.getresponse()
                data = r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            except OSError as exc:
                status, data = -1, str(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            ms = (time.perf_counter() - t) * 1000
            with lock:
                lat[kind].append(ms)
                cursor["done"] += 1
                if cursor["done"] == args.warmup:
                    rss["after_warmup"] = rss_mb(proc.pid)
                if good and status != 200:
                    if status == 503:
                        shed["503"] += 1
                    failed_good.append(f"{kind}: {status} {data[:120]!r}")
                if not good:
                    bad_statuses[status] = bad_statuses.get(status, 0) + 1
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rss["end"] = rss_mb(proc.pid)
    proc.terminate()
    proc.wait(10)

    sent = sum(len(v) for v in lat.values())
    rows = []
    for kind, values in lat.items():
        if values:
            a = np.array(values)
            rows.append({"kind": kind, "requests": len(values), "p50_ms": round(float(np.percentile(a, 50)), 2),
                         "p99_ms": round(float(np.percentile(a, 99)), 2)})
    growth = rss["end"] - rss.get("after_warmup", rss["end"])
    report = {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU(s)",
        "clients": args.clients, "requests_sent": sent, "wall_s": round(wall, 1),
        "throughput_rps": round(sent / wall, 1), "startup_s": round(startup, 2),
        "failed_good_requests": len(failed_good), "failed_good_examples": failed_good[:5],
        "good_refused_503": shed["503"], "bad_request_statuses": {str(k): v for k, v in sorted(bad_statuses.items())},
        "rss_mb": {k: round(v, 1) for k, v in rss.items()}, "rss_growth_mb": round(growth, 1),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Load test (`scrawl serve`, `benchmarks/load.py`)",
        "",
        f"Measured {report['measured']} on {report['machine']}: {args.clients} clients, {sent:,} requests "
        f"(70% predict, 10% read, 20% bad), {wall:.1f} s, **{report['throughput_rps']} requests/s**.",
        "",
        f"- failed good requests: **{len(failed_good)}**",
        f"- bad requests answered with: {', '.join(f'{k} x{v}' for k, v in report['bad_request_statuses'].items())}",
        f"- server memory: {rss.get('after_warmup', float('nan')):.1f} MB after {args.warmup} requests, "
        f"{rss['end']:.1f} MB at the end: **growth {growth:+.1f} MB** (limit {MAX_GROWTH_MB:.0f} MB)",
        "",
        "| request | count | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        *[f"| {r['kind']} | {r['requests']:,} | {r['p50_ms']} | {r['p99_ms']} |" for r in rows],
    ]
    (args.out / "load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if failed_good or growth > MAX_GROWTH_MB:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
