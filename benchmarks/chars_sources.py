"""Issue 15's figures on writers the models never trained on, for one or more models side by side
(for example the bundled models before and after a retrain):

- UNIPEN characters of the held-out writers (scrawl.data.chars_extra.test_writer: about 1 in 10 of
  UNIPEN's 281 writers, from several countries), drawn from their pen strokes (seed 0) and read as a
  user's image is read (`scrawl evaluate MODEL --dataset unipen-chars --split test`): digits for digit
  models, all 62 classes (and merged case) for character models;
- the LEAF FEMNIST sample's test split, only the writers who are not in the FEMNIST shards the
  character model trains on (femnist-nist): 156 of its 184 test writers are.

Writes benchmarks/results/chars_sources.{json,md}.

    python benchmarks/chars_sources.py --model before=/tmp/old/chars.pt --model after=chars [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent


def unseen_femnist(data_dir):
    """The FEMNIST sample's test split, without the writers of the femnist-nist shards."""
    import torch

    from scrawl.data import load_dataset
    from scrawl.data.chars_extra import load_femnist_nist
    from scrawl.data.download import ensure_files

    sample = load_dataset("femnist-sample", "test", data_dir)
    path = ensure_files("femnist-sample", "test", data_dir)["arrays"]
    with np.load(path, allow_pickle=False) as z:
        writers = z["test_writers"]
    _, _, users = load_femnist_nist(ensure_files("femnist-nist", "train", data_dir)["arrays"])
    keep = ~np.isin(writers, np.unique(users))
    info = {"writers": int(len(np.unique(writers))), "writers_unseen": int(len(np.unique(writers[keep]))),
            "images_unseen": int(keep.sum()), "images": int(len(writers))}
    idx = torch.from_numpy(np.flatnonzero(keep))
    return SimpleNamespace(name="femnist-sample", split="test", images=sample.images[idx],
                           labels=sample.labels[idx], classes=sample.classes), info


def score(rec, dataset, charset=None) -> dict:
    from scrawl.evaluation import evaluate

    m = evaluate(rec, dataset, charset=charset).metrics
    out = {"n": m["n"], "accuracy": m["accuracy"], "rejected_share": m.get("rejected_share", 0.0)}
    if m.get("merged_accuracy") is not None:
        out["merged_accuracy"] = m["merged_accuracy"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, metavar="NAME=MODEL",
                    help="a label and a bundled model name or checkpoint; repeatable")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=str(HERE / "results" / "chars_sources"))
    args = ap.parse_args()

    from scrawl.data import load_dataset
    from scrawl.labels import DIGITS, characters_of
    from scrawl.runtime.recognizer import Recognizer

    unipen = load_dataset("unipen-chars", "test", args.data_dir)
    femnist, femnist_info = unseen_femnist(args.data_dir)
    results = {}
    for spec in args.model:
        label, _, model = spec.partition("=")
        rec = Recognizer(model or label)
        digits_only = set(characters_of(rec.classes)) <= set(DIGITS)
        row = {"model": model or label, "classes": len(characters_of(rec.classes))}
        if digits_only:
            keep = unipen.labels < 10
            digits = SimpleNamespace(name=unipen.name, split="test", images=unipen.images[keep],
                                     labels=unipen.labels[keep], classes=list(DIGITS))
            row["unipen_digits"] = score(rec, digits)
        else:
            row["unipen_chars"] = score(rec, unipen)
            row["femnist_unseen_writers"] = score(rec, femnist)
        results[label] = row
        print(label, json.dumps(row))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.machine(),
            "unipen_test": {"images": len(unipen), "digits": int((unipen.labels < 10).sum())},
            "femnist_sample_test": femnist_info}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    lines = ["# Characters by writers the models never trained on", "",
             f"`python benchmarks/chars_sources.py {' '.join('--model ' + m for m in args.model)}` ({meta['date']})", "",
             f"UNIPEN held-out writers: {meta['unipen_test']['images']} characters, {meta['unipen_test']['digits']} digits. "
             f"FEMNIST sample test: {femnist_info['images_unseen']} of {femnist_info['images']} images, by the "
             f"{femnist_info['writers_unseen']} of {femnist_info['writers']} writers not in the femnist-nist shards.", "",
             "| model | set | images | exact | merged case | rejected |", "|---|---|---|---|---|---|"]
    for label, row in results.items():
        for key, name in (("unipen_digits", "UNIPEN held-out writers, digits"),
                          ("unipen_chars", "UNIPEN held-out writers, 62 classes"),
                          ("femnist_unseen_writers", "FEMNIST sample, unseen writers")):
            if key in row:
                r = row[key]
                merged = f"{r['merged_accuracy']:.2%}" if "merged_accuracy" in r else ""
                lines.append(f"| {label} ({row['model']}) | {name} | {r['n']} | {r['accuracy']:.2%} | {merged} | "
                             f"{r['rejected_share']:.2%} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
