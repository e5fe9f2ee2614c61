"""Memory of one training step of the line model (the `line` recipe's CRNN), whole and in pieces.

A training step of the line recipe puts a batch of 64 lines through the network in pieces of at most
`LineDataConfig.max_columns` columns (lines x padded width), gradients summed. This measures the peak
resident memory of one forward and backward pass, each in a fresh process (ru_maxrss), for the widest
batch the recipe allows (64 lines of `max_width` px) in one piece and in the pieces it is cut into, and
for a process that only builds the model (the baseline).

Then --steps training steps (AdamW, bf16 autocast where the CPU has it, as `--precision auto` trains) of
pieces of random widths, as a run's batches come: once with oneDNN's kernel cache at its default (1,024
kernels, one per input shape) and once bounded as training bounds it
(scrawl.training.distributed.KERNEL_CACHE), each in a fresh process.

Writes benchmarks/results/line_step_memory.json.

    python benchmarks/line_step_memory.py [--steps 150]
"""

from __future__ import annotations

import argparse
import json
import os
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


def widths_worker(steps: int) -> None:
    """`steps` optimizer steps of one piece each, of random width (the lines a piece of max_columns holds)."""
    import resource
    import time

    import numpy as np
    import torch

    from scrawl.labels import LINE_ALPHABET
    from scrawl.models import build_model
    from scrawl.training import RECIPES
    from scrawl.training.distributed import resolve_precision
    from scrawl.training.lines import STRIDE, LineDataConfig

    torch.set_num_threads(2)
    lc, cfg = LineDataConfig(), RECIPES["line"]
    model = build_model(cfg.model, num_classes=len(LINE_ALPHABET) + 1, **cfg.model_config)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    bf16, rng, start = resolve_precision("auto"), np.random.default_rng(0), time.perf_counter()
    for _ in range(steps):
        width = -(-int(rng.integers(40, lc.max_width)) // STRIDE) * STRIDE
        x = torch.rand(max(1, min(64, lc.max_columns // width)), 1, 32, width)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x.contiguous(memory_format=torch.channels_last))
        logits.float().logsumexp(-1).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - start, bf16)


def measure(lines: int, width: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--worker", str(lines), str(width)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure_widths(steps: int, cache: int) -> tuple[float, float, bool]:
    env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(cache)}
    out = subprocess.run([sys.executable, __file__, "--widths", str(steps)], capture_output=True, text=True,
                         check=True, env=env)
    peak, seconds, bf16 = out.stdout.strip().splitlines()[-1].split()
    return float(peak), float(seconds), bf16 == "True"


def main(argv=None) -> int:
    from scrawl.training.distributed import KERNEL_CACHE
    from scrawl.training.lines import LineDataConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150, help="steps of random widths for the kernel cache figure")
    args = ap.parse_args(argv)

    lc = LineDataConfig()
    batch = 64
    piece = max(1, lc.max_columns // lc.max_width)  # lines of max_width px in one piece
    base = measure(0, 0)
    whole = measure(batch, lc.max_width)
    cut = measure(piece, lc.max_width)
    widths = {cache: measure_widths(args.steps, cache) for cache in (1024, KERNEL_CACHE)}
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "max_width": lc.max_width,
              "max_columns": lc.max_columns, "batch": batch, "piece_lines": piece,
              "peak_mb": {"model_only": round(base), "whole_batch": round(whole), "one_piece": round(cut)},
              "step_mb": {"whole_batch": round(whole - base), "one_piece": round(cut - base)},
              "random_widths": {"steps": args.steps, "bf16": widths[KERNEL_CACHE][2],
                                "kernel_cache": {str(c): {"peak_mb": round(p), "seconds": round(t, 1)}
                                                 for c, (p, t, _) in widths.items()}}}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "line_step_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"one training step, 64 lines {lc.max_width} px wide: {whole - base:.0f} MB in one piece, "
          f"{cut - base:.0f} MB per piece of {piece} lines (max_columns {lc.max_columns}); "
          f"the model alone: {base:.0f} MB")
    for cache, (peak, seconds, bf16) in widths.items():
        print(f"{args.steps} steps of random widths{' (bf16)' if bf16 else ''}, oneDNN kernel cache {cache}: "
              f"peak {peak:.0f} MB, {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]))
        raise SystemExit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--widths":
        widths_worker(int(sys.argv[2]))
        raise SystemExit(0)
    raise SystemExit(main())
