"""Peak memory of a real line training run: `scrawl train --recipe line-tune` for a while, then stopped.

Starts the recipe's second stage from the bundled line model (`--init`, so the first stage is not
retrained) in a child process with 2 threads, lets it render its lines and train for --minutes after the
first step, stops it with SIGTERM (the run writes a resumable last.pt and exits), and reports the peak
resident memory of the training process (ru_maxrss of the waited child: the largest of it and its render
workers) and how many steps it made. Needs the UNIPEN words and MNIST (SCRAWL_DATA or --data-dir);
rendering takes about 10 minutes on 2 cores.

Writes benchmarks/results/line_train_memory.json.

    python benchmarks/line_train_memory.py [--minutes 8] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=8.0, help="training time after the first step")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)

    env = dict(os.environ, **({"SCRAWL_DATA": args.data_dir} if args.data_dir else {}))
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "train.log"
        cmd = [sys.executable, "-m", "scrawl", "train", "--recipe", "line-tune", "--threads", "2",
               "--init", str(ROOT / "src/scrawl/assets/line.pt"), "--out", str(Path(tmp) / "run")]
        t0 = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            started = None
            while proc.poll() is None:
                time.sleep(5)
                text = log_path.read_text(errors="replace")
                if started is None and re.search(r"epoch 1/\d+:\s+\d+%.*\| [1-9]\d*/", text):
                    started = time.perf_counter()
                if started is not None and time.perf_counter() - started >= 60 * args.minutes:
                    proc.send_signal(signal.SIGTERM)
                    break
            proc.wait()
        text = log_path.read_text(errors="replace")
        steps = [int(m) for m in re.findall(r"epoch 1/\d+:\s+\d+%.*?\| (\d+)/", text)]
        report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(cmd[2:]),
                  "returncode": proc.returncode, "rendering_s": round(started - t0, 1) if started else None,
                  "training_minutes": args.minutes, "steps": max(steps, default=0),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "line_train_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if started is None:
        print(text[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
