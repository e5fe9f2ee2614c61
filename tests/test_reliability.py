"""Reliability under hard faults: SIGKILL (no handler runs, no cleanup) and unwritable output folders.

- `scrawl train` killed with SIGKILL at three seeded random moments, resumed each time with
  `scrawl train --resume`: after every kill last.pt/best.pt load (never a torn file), no finished epoch
  is lost, and the final model is as good as an uninterrupted run's.
- A process saving checkpoints in a loop, SIGKILLed at random moments (so most kills land inside a
  write): the checkpoint file always loads; the only debris is the `.NAME.*.tmp` temp file.
- An output folder that cannot be created or written is a clear error (exit 2, names the path, no
  traceback).
"""

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scrawl.runtime.checkpoint import load_checkpoint

TRAIN = ["--recipe", "fast", "--limit", "12000", "--epochs", "3", "--batch-size", "64"]
KILLS = 3
SEED = 20261125


def _train_cmd(data_dir, out, *, resume=False):
    # -v: the "resuming ... at epoch N" log line tells the test when a resumed run has begun training.
    cmd = [sys.executable, "-m", "scrawl", "-v", "train"]
    cmd += ["--resume"] if resume else TRAIN
    return cmd + ["--no-progress", "--data-dir", str(data_dir), "--out", str(out)]


class _Run:
    """A `scrawl train` subprocess whose stderr is collected by a thread (so it never blocks)."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err, self.out = [], []
        self._threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stderr, self.err), (self.proc.stdout, self.out))]
        for t in self._threads:
            t.start()

    def _pump(self, stream, sink):
        for line in stream:
            sink.append(line)

    def saw(self, text):
        return any(text in line for line in list(self.err))

    def wait(self, timeout=300):
        self.proc.wait(timeout)
        for t in self._threads:
            t.join(10)
        return "".join(self.err)


def _wait_for(cond, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _check_outputs(out: Path):
    """Every checkpoint there loads; the only other files are save_checkpoint's `.NAME.*.tmp` temps."""
    last = load_checkpoint(out / "last.pt")  # CheckpointError (test fails) if torn
    best = load_checkpoint(out / "best.pt") if (out / "best.pt").exists() else None
    leftovers = sorted(p.name for p in out.iterdir() if p.name not in ("last.pt", "best.pt"))
    for name in leftovers:
        assert name.startswith((".last.pt.", ".best.pt.")) and name.endswith(".tmp"), leftovers
    return last, best, leftovers


@pytest.mark.realdata
@pytest.mark.slow
def test_sigkill_three_times_then_resume_loses_no_epoch(real_data_dir, tmp_path):
    rng = random.Random(SEED)
    t0 = time.monotonic()
    straight = _Run(_train_cmd(real_data_dir, tmp_path / "straight"))
    err = straight.wait()
    assert straight.proc.returncode == 0, err
    ref = load_checkpoint(tmp_path / "straight" / "last.pt").meta["history"]
    assert len(ref) == 3
    epoch_s = max(h["seconds"] for h in ref)  # one epoch's training time on this machine
    t_straight = time.monotonic() - t0

    out = tmp_path / "killed"
    done_before, kills, leftovers_seen, log = 0, 0, [], []
    while kills < KILLS:
        run = _Run(_train_cmd(real_data_dir, out, resume=kills > 0))
        if kills == 0:
            started = _wait_for(lambda: (out / "last.pt").exists(), run.proc)  # epoch 1 is saved
        else:
            started = _wait_for(lambda: run.saw("resuming"), run.proc)  # data loaded, training begins
        assert started, f"run {kills} ended before training had begun: {run.wait()}"
        remaining = 3 - done_before
        # Up to 1.3 epochs while 2+ remain (the kill may land while best.pt/last.pt are written);
        # under one epoch when one remains, so the kill lands before the run could finish.
        delay = rng.uniform(0.0, epoch_s * (1.3 if remaining >= 2 else 0.8))
        time.sleep(delay)
        assert run.proc.poll() is None, f"run finished before kill {kills + 1} (delay {delay:.2f}s)"
        run.proc.send_signal(signal.SIGKILL)
        run.wait()
        assert run.proc.returncode == -signal.SIGKILL
        kills += 1
        last, best, leftovers = _check_outputs(out)
        leftovers_seen += leftovers
        done = len(last.meta["history"])
        assert last.meta["epochs_done"] == done and last.training_state["epoch"] == done
        assert done >= done_before, "a finished epoch was lost"
        if best is not None:
            assert 1 <= best.meta["epochs_done"] <= done + 1  # best.pt is written just before last.pt
        log.append((round(delay, 2), done))
        done_before = done

    final_run = _Run(_train_cmd(real_data_dir, out, resume=True))
    err = final_run.wait()
    assert final_run.proc.returncode == 0, err
    assert "Traceback" not in err
    last, best, _ = _check_outputs(out)
    history = last.meta["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3] and last.meta["epochs_done"] == 3
    acc, ref_acc = history[-1]["val_acc"], ref[-1]["val_acc"]
    print(f"\nkills (delay s, epochs done after it): {log}; temp files left: {leftovers_seen}; "
          f"val_acc interrupted {acc:.4f} vs straight {ref_acc:.4f}; straight run {t_straight:.1f}s, "
          f"whole test {time.monotonic() - t0:.1f}s")
    assert acc >= 0.95 and abs(acc - ref_acc) <= 0.015, (acc, ref_acc)
    assert best is not None and best.meta["history"][-1]["val_acc"] == max(h["val_acc"] for h in history)


_SAVER = r"""
import sys, torch
from scrawl.runtime.checkpoint import save_checkpoint
path = sys.argv[1]
meta = {"arch": "x", "model_config": {}, "classes": ["0"], "frame": {}, "n": 0}
state = {"w%d" % i: torch.full((256, 256), float(i)) for i in range(16)}  # 4 MiB: a write takes a while
save_checkpoint(path, meta, state)
print("ready", flush=True)
n = 0
while True:
    n += 1
    meta["n"] = n
    save_checkpoint(path, meta, {k: v + n for k, v in state.items()})
"""


def test_sigkill_during_checkpoint_writes_never_leaves_a_torn_file(tmp_path):
    rng = random.Random(SEED)
    path = tmp_path / "last.pt"
    seen_n, temps = [], []
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        ck = load_checkpoint(path)  # whole: the previous or the new version, never a mix or a stub
        n = ck.meta["n"]
        assert all(float(v[0, 0]) == i + n for i, v in enumerate(ck.state_dict.values()))
        seen_n.append(n)
        others = sorted(p.name for p in tmp_path.iterdir() if p.name != "last.pt")
        assert all(name.startswith(".last.pt.") and name.endswith(".tmp") for name in others), others
        temps = others
    print(f"\nsaves completed before each kill: {seen_n}; temp files left after the kills: {temps}")


def _unwritable_dir(tmp_path) -> Path:
    """A folder Scrawl cannot write into. chmod 0o500 stops ordinary users but not root, so as root
    use a path below a regular file, which no one can create."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        probe = locked / "probe"
        probe.write_text("x")
        probe.unlink()  # writable anyway: we are root
    except OSError:
        return locked / "run"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "run"


@pytest.mark.realdata
def test_unwritable_output_folder_is_a_clear_error(real_data_dir, tmp_path):
    out = _unwritable_dir(tmp_path)
    cmd = [sys.executable, "-m", "scrawl", "train", "--recipe", "fast", "--limit", "640", "--epochs", "1",
           "--batch-size", "64", "--no-progress", "--data-dir", str(real_data_dir), "--out", str(out)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    print(f"\nunwritable --out {out}: exit {r.returncode} after {took:.1f}s: {r.stderr.strip()}")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert str(out.parent) in r.stderr or str(out) in r.stderr, r.stderr
    assert r.stderr.startswith("scrawl: error: ")
    tmp_path.joinpath("locked").chmod(0o700)
