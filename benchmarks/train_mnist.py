"""Training benchmark on MNIST: accuracy, training time, wall time and peak memory per recipe.

Each run is a real `scrawl train` subprocess (so wall time and peak RSS are the command's own),
followed by the test-set accuracy of its best.pt. The seed notebook's Keras network ("baseline")
is trained the same ways as the comparison rows. Writes benchmarks/results/train_mnist.{json,md}.

    python benchmarks/train_mnist.py [--data-dir ../shared/data] [--only fast,fast-baseline]

The `default` run is the README's training command; its best.pt is the bundled model
(`--install` copies it to src/scrawl/assets/digits.pt); the `lite` run's is digits-lite.pt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# name -> (scrawl train arguments, seeds, description)
RUNS = {
    "default": (["--recipe", "default"], [0], "Scrawl default (scrawlnet, 15 epochs, augmentation): the bundled model"),
    "default-baseline": (["--recipe", "default", "--model", "baseline"], [0], "seed's Keras network, trained the same way"),
    "keras": (["--recipe", "keras"], [0], "seed's Keras network, trained the seed's way (Adam 1e-3, 10 epochs, no augmentation)"),
    "lite": (["--recipe", "lite"], [0], "Scrawl lite (fastnet, 20 epochs, augmentation): the bundled digits-lite model"),
    "fast": (["--recipe", "fast"], [0, 1, 2], "Scrawl fast recipe (fastnet, 1 epoch)"),
    "fast-baseline": (["--recipe", "fast", "--model", "baseline"], [0, 1, 2], "seed's Keras network, fast recipe"),
}


def run_one(args: list[str], seed: int, out: Path, data_dir: str | None) -> dict:
    cmd = [sys.executable, "-m", "scrawl", "train", *args, "--seed", str(seed), "--out", str(out), "--no-progress"]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stdout}\n{stderr}")
    return {"seed": seed, "wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "out": str(out)}


def test_accuracy(checkpoint: Path, data_dir: str | None) -> tuple[float, dict]:
    from scrawl.data import load_dataset
    from scrawl.evaluation import evaluate
    from scrawl.runtime.recognizer import Recognizer

    rec = Recognizer(checkpoint)
    result = evaluate(rec, load_dataset("mnist", "test", data_dir), reframe="no")
    return result.metrics["accuracy"], rec.meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("SCRAWL_DATA"))
    ap.add_argument("--only", help="comma-separated run names: " + ",".join(RUNS))
    ap.add_argument("--work", default=str(REPO / "runs" / "bench"), help="where the runs are written")
    ap.add_argument("--install", action="store_true", help="copy the default run's best.pt to the bundled model")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(RUNS)
    import torch

    from scrawl.runtime.checkpoint import load_checkpoint

    rows = []
    for name in names:
        train_args, seeds, description = RUNS[name]
        runs = []
        for seed in seeds:
            out = Path(args.work) / f"{name}-s{seed}"
            r = run_one(train_args, seed, out, args.data_dir)
            r["test_acc"], _ = test_accuracy(out / "best.pt", args.data_dir)
            meta = load_checkpoint(out / "last.pt").meta  # the whole run's history (best.pt's may be shorter)
            r["train_s"] = round(sum(h["seconds"] for h in meta["history"]), 1)
            r["epochs"] = len(meta["history"])
            r["model"], r["parameters"] = meta["arch"], meta["parameters"]
            runs.append(r)
            print(f"{name} seed {seed}: test {r['test_acc']:.4%}, train {r['train_s']}s, wall {r['wall_s']}s, "
                  f"peak RSS {r['peak_rss_mb']} MB", flush=True)
        accs = [r["test_acc"] for r in runs]
        rows.append({"name": name, "description": description, "model": runs[0]["model"],
                     "parameters": runs[0]["parameters"], "epochs": runs[0]["epochs"], "runs": runs,
                     "test_acc_mean": statistics.mean(accs), "test_acc_min": min(accs), "test_acc_max": max(accs),
                     "train_s_mean": statistics.mean(r["train_s"] for r in runs),
                     "wall_s_mean": statistics.mean(r["wall_s"] for r in runs),
                     "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs)})
    env = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
           "cores": os.cpu_count(), "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    # Rows from an earlier invocation that this one did not rerun (--only) are kept.
    previous = RESULTS / "train_mnist.json"
    if previous.exists() and args.only:
        fresh = {r["name"] for r in rows}
        kept = [r for r in json.loads(previous.read_text())["rows"] if r["name"] not in fresh]
        rows = sorted(kept + rows, key=lambda r: list(RUNS).index(r["name"]) if r["name"] in RUNS else len(RUNS))
    (RESULTS / "train_mnist.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")
    lines = [
        f"MNIST training on {env['cores']} CPU cores (torch {env['torch']}, {env['date']}); "
        "test accuracy of best.pt on the official 10,000-image test set.",
        "",
        "| run | model | params | epochs | test accuracy | training s | wall s | peak RSS MB | seeds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        acc = f"{r['test_acc_mean']:.2%}"
        if len(r["runs"]) > 1:
            acc += f" ({r['test_acc_min']:.2%}–{r['test_acc_max']:.2%})"
        lines.append(f"| {r['name']}: {r['description']} | {r['model']} | {r['parameters']:,} | {r['epochs']} | {acc} | "
                     f"{r['train_s_mean']:.1f} | {r['wall_s_mean']:.1f} | {r['peak_rss_mb_max']:.0f} | {len(r['runs'])} |")
    (RESULTS / "train_mnist.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.install and "default" in names:
        shutil.copyfile(Path(args.work) / "default-s0" / "best.pt", REPO / "src" / "scrawl" / "assets" / "digits.pt")
        print("installed the default run's best.pt as src/scrawl/assets/digits.pt")


if __name__ == "__main__":
    main()
