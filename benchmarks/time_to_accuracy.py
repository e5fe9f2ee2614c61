"""Time to accuracy on MNIST: Scrawl's fast recipe against the seed's Keras network, in one run.

Scrawl: `scrawl train --recipe fast --epochs E` for growing budgets E (fractions of an epoch too: the
one-cycle schedule then ends part-way into the last pass), each with several seeds (real subprocesses);
a budget "reaches" a target when the mean test accuracy of its runs' final models does,
and its time is those runs' mean training time (the epochs' own seconds from the checkpoint history:
no data loading, no validation). Keras (benchmarks/keras_seed.py, TensorFlow): training time summed
per epoch until the test accuracy first reaches the target. Both sides use the same 2-core CPU in the
same invocation, so the ratio holds on a noisy machine. Writes benchmarks/results/time_to_accuracy.{json,md}.

    python benchmarks/time_to_accuracy.py [--data-dir ../shared/data] [--seeds 0,1,2]
                                          [--budgets 0.5,0.75,1,1.5,2,2.5,3,3.5,4,5]
                                          [--no-keras] [--device cpu]

Without TensorFlow installed the Keras rows are left out, and the script says so.
"""

from __future__ import annotations

import argparse
import importlib.util
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
TARGETS = (0.98, 0.99, 0.995)


def scrawl_run(epochs: float, seed: int, out: Path, data_dir: str | None, device: str) -> dict:
    cmd = [sys.executable, "-m", "scrawl", "train", "--recipe", "fast", "--epochs", f"{epochs:g}", "--seed", str(seed),
           "--out", str(out), "--no-progress"]
    if device != "cpu":
        cmd += ["--device", device]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    from scrawl.data import load_dataset
    from scrawl.evaluation import evaluate
    from scrawl.runtime.recognizer import Recognizer

    rec = Recognizer(out / "last.pt")  # the model at the end of its schedule
    acc = evaluate(rec, load_dataset("mnist", "test", data_dir), reframe="no").metrics["accuracy"]
    return {"seed": seed, "epochs": epochs, "test_acc": acc, "wall_s": round(wall, 2),
            "train_s": round(sum(h["seconds"] for h in rec.meta["history"]), 2)}


def keras_run(seed: int, data_dir: str | None, target: float) -> dict:
    cmd = [sys.executable, str(REPO / "benchmarks" / "keras_seed.py"), "train", "--seed", str(seed),
           "--target", str(target)]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def keras_time_to(run: dict, target: float) -> float | None:
    return next((e["train_s"] for e in run["epochs"] if e["test_acc"] >= target), None)


def spread(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("SCRAWL_DATA"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budgets", default="0.5,0.75,1,1.5,2,2.5,3,3.5,4,5",
                    help="epoch budgets tried for the fast recipe, in order (fractions allowed)")
    ap.add_argument("--no-keras", action="store_true", help="measure Scrawl alone")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (Scrawl only)")
    ap.add_argument("--work", default=str(REPO / "runs" / "tta"), help="where the runs are written")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]
    import torch

    budget_rows = []
    for epochs in budgets:
        runs = [scrawl_run(epochs, s, Path(args.work) / f"fast-e{epochs:g}-s{s}", args.data_dir, args.device) for s in seeds]
        row = {"epochs": epochs, "runs": runs, "test_acc": spread([r["test_acc"] for r in runs]),
               "train_s": spread([r["train_s"] for r in runs])}
        budget_rows.append(row)
        print(f"scrawl fast, {epochs:g} epoch(s): test {row['test_acc']['mean']:.4%} "
              f"({row['test_acc']['min']:.2%}-{row['test_acc']['max']:.2%}), train {row['train_s']['mean']:.1f} s", flush=True)
        if row["test_acc"]["mean"] >= max(TARGETS):
            break
    scrawl_to = {}
    for target in TARGETS:
        row = next((b for b in budget_rows if b["test_acc"]["mean"] >= target), None)
        scrawl_to[str(target)] = None if row is None else {"epochs": row["epochs"], **row["train_s"],
                                                           "all_seeds_reached": row["test_acc"]["min"] >= target}

    keras = None
    if args.no_keras:
        print("Keras rows skipped (--no-keras)")
    elif importlib.util.find_spec("tensorflow") is None:
        print("TensorFlow is not installed, so only Scrawl was measured "
              "(pip install -c constraints.txt -e '.[bench]' adds the Keras comparison)")
    else:
        keras_runs = []
        for s in seeds:
            keras_runs.append(keras_run(s, args.data_dir, 0.99))
            last = keras_runs[-1]["epochs"][-1]
            print(f"keras seed {s}: {last['test_acc']:.4%} after {last['epoch']} epochs, {last['train_s']:.1f} s", flush=True)
        keras = {"tensorflow": keras_runs[0]["tensorflow"], "runs": keras_runs, "time_to": {}}
        for target in (0.98, 0.99):
            times = [keras_time_to(r, target) for r in keras_runs]
            keras["time_to"][str(target)] = spread(times) if None not in times else None

    env = {"python": platform.python_version(), "torch": torch.__version__, "cores": os.cpu_count(),
           "cpu": platform.processor() or platform.machine(), "device": args.device, "date": time.strftime("%Y-%m-%d")}
    result = {"environment": env, "seeds": seeds, "scrawl_budgets": budget_rows, "scrawl_time_to": scrawl_to, "keras": keras}
    ratios = {}
    if keras and keras["time_to"].get("0.99"):
        k99 = keras["time_to"]["0.99"]["mean"]
        for target in ("0.99", "0.995"):
            if scrawl_to.get(target):
                ratios[f"keras_99_over_scrawl_{target}"] = k99 / scrawl_to[target]["mean"]
    result["ratios"] = ratios
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "time_to_accuracy.json").write_text(json.dumps(result, indent=2) + "\n")
    md = render(result)
    (RESULTS / "time_to_accuracy.md").write_text(md)
    print(md)


def render(r: dict) -> str:
    env = r["environment"]
    lines = [f"Time to MNIST test accuracy, training seconds ({env['cores']} CPU cores, device {env['device']}, "
             f"torch {env['torch']}, {env['date']}; mean and range over seeds {', '.join(map(str, r['seeds']))}).", "",
             "| run | to 98% | to 99% | to 99.5% |", "|---|---:|---:|---:|"]

    def cell(t):
        if t is None:
            return "not reached"
        s = f"{t['mean']:.1f} s"
        if t["n"] > 1:
            s += f" ({t['min']:.1f}–{t['max']:.1f})"
        if "epochs" in t:
            s += f", {t['epochs']:g} ep" + ("" if t["all_seeds_reached"] else ", mean only")
        return s

    st = r["scrawl_time_to"]
    lines.append(f"| Scrawl fast recipe (fastnet, `scrawl train --recipe fast --epochs E`) | {cell(st['0.98'])} | "
                 f"{cell(st['0.99'])} | {cell(st['0.995'])} |")
    if r["keras"]:
        kt = r["keras"]["time_to"]
        lines.append(f"| seed's Keras CNN (TensorFlow {r['keras']['tensorflow']}, Adam, batch 128) | {cell(kt.get('0.98'))} | "
                     f"{cell(kt.get('0.99'))} | not tried |")
    else:
        lines.append("| seed's Keras CNN | TensorFlow not installed | | |")
    lines += ["", "| fast recipe budget | test accuracy | training s |", "|---:|---:|---:|"]
    for b in r["scrawl_budgets"]:
        a, t = b["test_acc"], b["train_s"]
        lines.append(f"| {b['epochs']:g} epoch(s) | {a['mean']:.2%} ({a['min']:.2%}–{a['max']:.2%}) | "
                     f"{t['mean']:.1f} ({t['min']:.1f}–{t['max']:.1f}) |")
    if r["ratios"]:
        lines += ["", "Keras's time to 99% divided by Scrawl's: " + ", ".join(
            f"{v:.1f}x (Scrawl to {float(k.rsplit('_', 1)[1]):.1%})" for k, v in r["ratios"].items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
