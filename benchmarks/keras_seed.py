"""The seed notebook's Keras CNN in TensorFlow, timed: the comparison rows of Scrawl's benchmarks.

Run as a subprocess by benchmarks/time_to_accuracy.py and benchmarks/inference.py (TensorFlow is an
optional, benchmark-only dependency: `pip install -c constraints.txt -e '.[bench]'`). Prints one JSON
object on its last line.

    python benchmarks/keras_seed.py train --seed 0 [--max-epochs 20] [--target 0.99]
    python benchmarks/keras_seed.py infer [--seconds 5]

The network and settings are the seed's: Conv32(3x3)-MaxPool-Conv64(3x3)-MaxPool-Flatten-Dense128-
Dropout(0.5)-Dense10 softmax, Adam (1e-3), batch 128, 90/10 train/validation split, pixels / 255.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter on stderr

REPO = Path(__file__).resolve().parents[1]


def load_mnist(data_dir: str | None):
    """MNIST as numpy (Scrawl's IDX reader, the same files the Scrawl rows use)."""
    sys.path.insert(0, str(REPO / "src"))
    from scrawl.data import ensure_files, read_idx

    def part(split):
        files = ensure_files("mnist", split, data_dir, download=False)
        return read_idx(files["images"]), read_idx(files["labels"])

    return part("train"), part("test")


def build(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(), keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def cmd_train(args) -> dict:
    import numpy as np

    (x, y), (xt, yt) = load_mnist(args.data_dir)
    x = (x.astype("float32") / 255)[..., None]
    xt = (xt.astype("float32") / 255)[..., None]
    rng = np.random.default_rng(args.seed)  # the seed's 90/10 split (validation_split would take the last 10%)
    order = rng.permutation(len(x))
    n_val = len(x) // 10
    tr, va = order[n_val:], order[:n_val]
    model = build(args.seed)
    epochs, total = [], 0.0
    for epoch in range(1, args.max_epochs + 1):
        t0 = time.perf_counter()
        model.fit(x[tr], y[tr], batch_size=128, epochs=1, verbose=0, shuffle=True)
        total += time.perf_counter() - t0  # training time only: the evaluations below are not counted
        val_acc = float(model.evaluate(x[va], y[va], batch_size=1000, verbose=0)[1])
        test_acc = float(model.evaluate(xt, yt, batch_size=1000, verbose=0)[1])
        epochs.append({"epoch": epoch, "train_s": round(total, 3), "val_acc": val_acc, "test_acc": test_acc})
        print(f"keras seed {args.seed} epoch {epoch}: {total:.1f} s, test {test_acc:.4f}", file=sys.stderr, flush=True)
        if test_acc >= args.target:
            break
    return {"seed": args.seed, "epochs": epochs}


def cmd_infer(args) -> dict:
    (_, _), (xt, _) = load_mnist(args.data_dir)
    xt = (xt.astype("float32") / 255)[..., None]
    model = build(0)  # untrained weights cost the same to run as trained ones
    one = xt[:1]

    from inference import timed  # the same latency loop as Scrawl's rows (benchmarks/inference.py)

    predict = timed(lambda: model.predict(one, verbose=0), args.seconds)
    direct = timed(lambda: model(one, training=False).numpy(), args.seconds)
    model.predict(xt, batch_size=1000, verbose=0)  # warm-up at the batch size
    # The median of several passes: TensorFlow's figure varied from 14,600 to 28,500 images/s between
    # runs of a single 3-pass timing on this machine.
    rates = []
    for _ in range(7):
        t0 = time.perf_counter()
        model.predict(xt, batch_size=1000, verbose=0)
        rates.append(len(xt) / (time.perf_counter() - t0))
    return {"predict": predict, "direct": direct, "batch_images_per_s": statistics.median(rates),
            "batch_images_per_s_range": [min(rates), max(rates)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-epochs", type=int, default=20)
    t.add_argument("--target", type=float, default=0.99, help="stop at the first epoch with this test accuracy")
    i = sub.add_parser("infer")
    i.add_argument("--seconds", type=float, default=5.0, help="time spent on each latency measurement")
    for p in (t, i):
        p.add_argument("--data-dir", default=os.environ.get("SCRAWL_DATA"))
    args = ap.parse_args()
    import tensorflow as tf

    result = cmd_train(args) if args.cmd == "train" else cmd_infer(args)
    result["tensorflow"] = tf.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
