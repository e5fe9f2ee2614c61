"""A training process for tests/test_distributed.py: `scrawl.training.train` from a JSON spec, alone or
as one of torchrun's processes, with two probes the real command lacks:

- every checkpoint write is logged as "RANK FILENAME" to spec["writes"], so a test sees who wrote what;
- spec["sigterm"] = [RANK, STEP] sends that rank a SIGTERM during its STEP-th training step (counted
  over the whole run, from 1), as a Ctrl-C or `kill` would.

spec["config"] holds TrainConfig fields; spec["rank_config"] = {RANK: {field: value}} gives one rank
other settings (to check that the ranks notice). Exit status: 0 done, 130 stopped, 2 a ScrawlError.
"""

import json
import os
import signal
import sys
from pathlib import Path

import torch.nn.functional as F

import scrawl.training as training
import scrawl.training.checkpointing as checkpointing  # where the run's checkpoints are written
from scrawl.errors import ScrawlError


def main() -> int:
    spec = json.loads(sys.argv[1])
    rank = int(os.environ.get("RANK", "0"))
    real_save = checkpointing.save_checkpoint

    def logged_save(path, *args, **kwargs):
        with open(spec["writes"], "a") as f:
            f.write(f"{rank} {Path(path).name}\n")
        return real_save(path, *args, **kwargs)

    checkpointing.save_checkpoint = logged_save
    if spec.get("sigterm") and spec["sigterm"][0] == rank:
        real_loss, calls = F.cross_entropy, [0]

        def loss_then_signal(*args, **kwargs):  # called once per training step
            calls[0] += 1
            if calls[0] == spec["sigterm"][1]:
                os.kill(os.getpid(), signal.SIGTERM)
            return real_loss(*args, **kwargs)

        F.cross_entropy = loss_then_signal
    config = dict(spec["config"], **spec.get("rank_config", {}).get(str(rank), {}))
    cfg = training.TrainConfig.from_dict(config)
    try:
        result = training.train(cfg, spec["out"], data_dir=spec["data_dir"], resume=spec.get("resume", False),
                                progress=False, threads=1, device="cpu")
    # One write per message: the ranks share torchrun's stdout/stderr, and print() writes the text and
    # the newline separately, so two ranks' lines could run together.
    except training.TrainingInterrupted as exc:
        sys.stderr.write(f"rank {rank}: {exc}\n")
        return 130
    except ScrawlError as exc:
        sys.stderr.write(f"rank {rank}: error: {exc}\n")
        return 2
    summary = {"rank": rank, "world_size": result["world_size"], "best_val_acc": result["best_val_acc"]}
    Path(f"{spec['writes']}.rank{rank}.json").write_text(json.dumps(summary))  # for the test to read
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
