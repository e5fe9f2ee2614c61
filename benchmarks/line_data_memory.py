"""Memory of a line training run's data: the renders of the bundled line recipe, raw and as held.

Renders the whole training and validation set of a recipe (default `line-tune`) exactly as
`scrawl train` does, in a fresh process, and reports: lines per rendition, what the training renders
would take as raw uint8 images (sum of height x width), what they take PNG-compressed as the run holds
them (`PackedLines`), the rendering time, and the peak resident memory (ru_maxrss) of the process and of
its largest render worker. Needs the UNIPEN words and MNIST (SCRAWL_DATA or --data-dir); about 11
minutes on 2 cores.

Writes benchmarks/results/line_data_memory.json.

    python benchmarks/line_data_memory.py [--recipe line-tune] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="line-tune")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)

    from scrawl.training import RECIPES
    from scrawl.training.lines import load_line_training_data

    cfg = RECIPES[args.recipe]
    t0 = time.perf_counter()
    data = load_line_training_data(cfg, args.data_dir, progress=True)
    seconds = time.perf_counter() - t0
    height = data.spec.size
    raw = sum(int(r.widths.sum()) * height for r in data.train)
    packed = sum(sum(b.nbytes for b in r.blobs) for r in data.train)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "recipe": args.recipe,
              "renditions": len(data.train), "train_lines": data.n_train, "val_lines": data.n_val,
              "train_renders_raw_mb": round(raw / 2**20), "train_renders_held_mb": round(packed / 2**20),
              "val_raw_mb": round(sum(im.nbytes for im in data.val) / 2**20),
              "render_seconds": round(seconds, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "line_data_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
