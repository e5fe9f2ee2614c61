"""Memory of one training step of the line model (the `line` recipe's CRNN), whole and in pieces.

A training step of the line recipe puts a batch of 64 lines through the network in pieces of at most
`LineDataConfig.max_columns` columns (lines x padded width), gradients summed. This measures the peak
resident memory of one forward and backward pass, each in a fresh process (ru_maxrss), for the widest
batch the recipe allows (64 lines of `max_width` px) in one piece and in the pieces it is cut into, and
for a process that only builds the model (the baseline).

Writes benchmarks/results/line_step_memory.json.

    python benchmarks/line_step_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(lines: int, width: int) -> None:
    import resource

    import torch

    from scrawl.labels import LINE_ALPHABET
    from scrawl.models import build_model
    from scrawl.training import RECIPES

    torch.set_num_threads(1)
    cfg = RECIPES["line"]
    model = build_model(cfg.model, num_classes=len(LINE_ALPHABET) + 1, **cfg.model_config)
    if lines:
        x = torch.rand(lines, 1, 32, width).contiguous(memory_format=torch.channels_last)
        model(x).logsumexp(-1).mean().backward()  # the activations backward keeps are what counts
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure(lines: int, width: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--worker", str(lines), str(width)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    from scrawl.training.lines import LineDataConfig

    lc = LineDataConfig()
    batch = 64
    piece = max(1, lc.max_columns // lc.max_width)  # lines of max_width px in one piece
    base = measure(0, 0)
    whole = measure(batch, lc.max_width)
    cut = measure(piece, lc.max_width)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "max_width": lc.max_width,
              "max_columns": lc.max_columns, "batch": batch, "piece_lines": piece,
              "peak_mb": {"model_only": round(base), "whole_batch": round(whole), "one_piece": round(cut)},
              "step_mb": {"whole_batch": round(whole - base), "one_piece": round(cut - base)}}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "line_step_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"one training step, 64 lines {lc.max_width} px wide: {whole - base:.0f} MB in one piece, "
          f"{cut - base:.0f} MB per piece of {piece} lines (max_columns {lc.max_columns}); "
          f"the model alone: {base:.0f} MB")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]))
        raise SystemExit(0)
    raise SystemExit(main())
