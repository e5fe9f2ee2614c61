"""The `scrawl` command: data, train, evaluate, predict, read, export, serve (read: cli_read.py).

The only module that prints. Every user mistake surfaces as a ScrawlError: one line on stderr,
exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import settings
from .errors import ScrawlError, TrainingInterrupted
from .labels import CHARSETS


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="scrawl", description="Read handwriting: digits, letters and strings of them.")
    p.add_argument("--version", action="version", version=f"scrawl {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .cli_read import add_read

    for add in (_add_data, _add_train, _add_evaluate, _add_predict, add_read, _add_export, _add_serve):
        add(sub)
    return p


def _data_dir_arg(sp) -> None:
    sp.add_argument("--data-dir", help="folder holding the datasets (default: $SCRAWL_DATA, else a user cache folder)")


def _runtime_arg(sp) -> None:
    sp.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                    help="torch: PyTorch checkpoints (.pt); onnx: ONNX Runtime with models from `scrawl export` "
                         "(.onnx), without loading torch (default: torch)")


def _add_data(sub) -> None:
    d = sub.add_parser("data", help="list, download and verify datasets")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for name, text in (("list", "datasets and whether their files are here"), ("verify", "check every present file's checksum")):
        sp = dsub.add_parser(name, help=text)
        _data_dir_arg(sp)
    sp = dsub.add_parser("download", help="download a dataset's files (verified against pinned SHA-256 sums)")
    sp.add_argument("name", help="dataset name, e.g. mnist or emnist-byclass (see `scrawl data list`)")
    sp.add_argument("--split", choices=["train", "test", "all"], default="all",
                    help="which split to download (default: all)")
    _data_dir_arg(sp)


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a model; writes best.pt and last.pt")
    t.add_argument("--recipe", default="default", help="named settings: default, fast, lite, chars, keras, line (the line model) (default: default)")
    t.add_argument("--dataset", help="dataset name (default: the recipe's, mnist)")
    t.add_argument("--task", help="what the model learns, see scrawl.tasks: classify (one character per image; "
                                  "the default) or ctc (a line of characters)")
    t.add_argument("--model", help="architecture: baseline, scrawlnet, fastnet, crnn (lines) (default: the recipe's)")
    t.add_argument("--epochs", type=_epochs, help="passes over the training data; a fraction such as 3.5 ends "
                                                   "the schedule part-way into the last (default: the recipe's)")
    t.add_argument("--batch-size", type=int, help="images per optimizer step (default: the recipe's, 128)")
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--seed", type=int, help="makes a run repeatable on the same machine (default 0)")
    t.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    t.add_argument("--augment-until", type=float, metavar="FRACTION",
                   help="augment only this share of the training steps, the first ones (default: the recipe's; "
                        "fast: 0.7, others: 1)")
    t.add_argument("--extra-train", action="append", metavar="DATASET",
                   help="add another dataset's train split to the training part, framed like the main dataset "
                        "(e.g. femnist-sample for a character model); repeatable")
    t.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                   help="bf16 autocast, fp32, or auto: bf16 where the CPU or GPU does it natively (default: auto)")
    t.add_argument("--limit", type=int, help="use only N training images (smoke runs)")
    t.add_argument("--threads", type=int, help="CPU threads for torch")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train: auto (a GPU when there is one), cpu or cuda (default: auto)")
    t.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    t.add_argument("--resume", action="store_true", help="continue exactly where OUT/last.pt stopped")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    _data_dir_arg(t)


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="accuracy, classification report, confusion matrix and error gallery")
    e.add_argument("checkpoint", nargs="?", default=None, metavar="MODEL",
                   help="bundled model name (digits, digits-lite, chars, line) or model file: a checkpoint, or with "
                        "--runtime onnx an .onnx file from `scrawl export` (int8 ones too) (default: digits)")
    e.add_argument("--dataset", default=None,
                   help="dataset to evaluate on (default: mnist; for a line model unipen-words, or touching-digits)")
    e.add_argument("--split", default="test", choices=["train", "test"],
                   help="which split of the dataset (default: test)")
    e.add_argument("--reframe", choices=["auto", "yes", "no"], default="auto",
                   help="pass images through Scrawl's preprocessing first (auto: when the dataset was framed "
                        "differently from the model's training data)")
    e.add_argument("--charset", choices=sorted(CHARSETS), help="only answer within this set of characters")
    e.add_argument("--out", default="reports/latest", help="report folder (default: reports/latest)")
    e.add_argument("--limit", type=int, default=0, help="line models: read only N lines (default: all)")
    e.add_argument("--lexicon", nargs="?", const="", default=None, metavar="WORDS_FILE",
                   help="line models: also score with the word prior (see scrawl read --lexicon)")
    _data_dir_arg(e)
    _runtime_arg(e)


def _add_predict(sub) -> None:
    pr = sub.add_parser("predict", help="read images: files, folders or globs")
    pr.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns to read")
    pr.add_argument("--model", default=None, help="bundled model name (digits, digits-lite, chars) or checkpoint path (default: digits)")
    pr.add_argument("--top-k", type=int, default=settings.TOP_K,
                    help=f"how many alternatives to show, best first (default: {settings.TOP_K})")
    pr.add_argument("--charset", choices=sorted(CHARSETS), help="only answer within this set of characters")
    pr.add_argument("--json", action="store_true", help="one JSON object per input, one per line")
    _runtime_arg(pr)


def _add_export(sub) -> None:
    ex = sub.add_parser("export", help="export a model to ONNX (.onnx plus a .json sidecar), checked against PyTorch")
    ex.add_argument("checkpoint", metavar="CHECKPOINT", help="bundled model name (digits, digits-lite, chars, line) or checkpoint file")
    ex.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default: onnx)")
    ex.add_argument("--out", help="output .onnx file (default: next to the checkpoint with the .onnx suffix; "
                                  "for a bundled model, NAME.onnx in the current folder)")
    ex.add_argument("--check", action="append", metavar="IMAGE",
                    help="also compare ONNX Runtime with PyTorch on this image (repeatable; the bundled samples "
                         "are always used)")
    ex.add_argument("--int8", action="store_true",
                    help="write an int8-quantized model (faster batches on CPUs with VNNI/AMX), calibrated on and "
                         "checked against the model's own training data (default output: NAME-int8.onnx)")
    ex.add_argument("--calibration", type=int, default=2000, metavar="N",
                    help="with --int8: training images to calibrate on (default: 2000)")
    _data_dir_arg(ex)


def _add_serve(sub) -> None:
    sv = sub.add_parser("serve", help="start the web app: a drawing page and a REST API")
    sv.add_argument("--host", default=settings.SERVE_HOST,
                    help=f"address to listen on (default: {settings.SERVE_HOST}, this machine only)")
    sv.add_argument("--port", type=int, default=settings.SERVE_PORT, help=f"port (default: {settings.SERVE_PORT})")
    sv.add_argument("--model", action="append", default=None, metavar="MODEL",
                    help="bundled model name or checkpoint path; repeat or comma-separate for several, "
                         "the first is the default (default: every bundled model, digits first)")
    sv.add_argument("--max-body-mb", type=float, default=settings.MAX_BODY_MB,
                    help=f"largest request body in MiB (default: {settings.MAX_BODY_MB:g})")
    sv.add_argument("--max-queue", type=int, default=settings.MAX_QUEUE,
                    help="recognitions that may wait for a CPU; more get 503 + Retry-After "
                         f"(default: {settings.MAX_QUEUE})")
    sv.add_argument("--request-timeout", type=float, default=settings.REQUEST_TIMEOUT,
                    help="seconds a recognition may take, waiting included, before a 503 "
                         f"(default: {settings.REQUEST_TIMEOUT:g})")
    sv.add_argument("-q", "--quiet", action="store_true",
                    help="no access log (by default one line per request on stderr: client, method, path, "
                         "status, milliseconds)")
    _runtime_arg(sv)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from .cli_read import cmd_read

    handler = {"data": cmd_data, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
               "read": cmd_read, "export": cmd_export, "serve": cmd_serve}[args.command]
    try:
        return handler(args) or 0
    except ScrawlError as exc:  # a user's mistake: the message, no traceback (and no torch import)
        print(f"scrawl: {'' if isinstance(exc, TrainingInterrupted) else 'error: '}{exc}", file=sys.stderr)
        return 130 if isinstance(exc, TrainingInterrupted) else 2
    except KeyboardInterrupt:
        print("scrawl: interrupted", file=sys.stderr)
        return 130


# --- data -------------------------------------------------------------------------------------

def cmd_data(args) -> int:
    from . import data

    if args.data_command == "download":
        info = data.dataset_info(args.name)  # DataError naming every dataset if unknown
        splits = ["train", "test"] if args.split == "all" else [args.split]
        shown: set = set()
        for split in splits:
            paths = data.ensure_files(info.name, split, args.data_dir, download=True, progress=True)
            for path in paths.values():
                if path not in shown:  # a re-split's two parts share their source's files
                    shown.add(path)
                    print(f"ok  {path}")
        return 0
    verify = args.data_command == "verify"
    rows = data.dataset_status(args.data_dir, verify=verify)
    print(f"data folder: {data.resolve_data_dir(args.data_dir)}")
    width = max([16] + [len(row["dataset"]) for row in rows])
    bad = 0
    for row in rows:
        if not row["present"]:
            missing = [f["file"] for f in row["files"] if not f["present"] and f["role"] != "mapping"]
            state, detail = "missing", ", ".join(missing)
        elif row["verified"] is False:
            bad += 1
            state = "BAD"
            detail = "; ".join(f"{f['file']}: {f['detail']}" for f in row["files"] if f["verified"] is False)
        else:
            state = "ok" if row["verified"] else "present"
            detail = "checksums verified" if row["verified"] else ("" if not verify else "no pinned checksum")
        if row.get("source"):
            detail = f"(cut from {row['source']}) {detail}".rstrip()
        print(f"  {row['dataset']:<{width}} {row['split']:<5} {state:<8} {detail}")
    if not verify:
        print("(run `scrawl data verify` to check checksums; `scrawl data download NAME` fetches a dataset)")
    return 1 if bad else 0


def _epochs(text: str) -> int | float:
    """--epochs: a positive number, kept an int when it is one (so checkpoints say 4, not 4.0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return int(value) if value.is_integer() else value


# --- train ------------------------------------------------------------------------------------

def cmd_train(args) -> int:
    from dataclasses import replace

    from .training import RECIPES, TrainConfig, train

    if args.recipe not in RECIPES:
        raise ScrawlError(f"unknown recipe {args.recipe!r}; choose one of: {', '.join(RECIPES)}")
    cfg: TrainConfig = RECIPES[args.recipe]
    overrides = {k: getattr(args, k) for k in ("dataset", "task", "model", "epochs", "batch_size", "lr", "seed", "precision",
                                               "limit", "augment_until")
                 if getattr(args, k) is not None}
    if args.no_augment:
        overrides["augment"] = None
    if args.extra_train:
        overrides["extra_train"] = args.extra_train
    if args.resume and (overrides or args.recipe != "default"):
        raise ScrawlError("--resume continues a run exactly, with the settings it was started with; "
                          "drop the other training options")
    if overrides.get("model") and overrides["model"] != cfg.model:
        overrides["model_config"] = {}  # the recipe's architecture settings belong to the recipe's model
    cfg = replace(cfg, **overrides)
    out = Path(args.out)
    if not args.resume and (out / "last.pt").exists():
        raise ScrawlError(f"{out} already holds a training run; use --resume to continue it or --out for a new folder")

    try:
        result = train(cfg, out, data_dir=args.data_dir, resume=args.resume, progress=not args.no_progress,
                       threads=args.threads, device=args.device)
    except TrainingInterrupted:
        if int(os.environ.get("RANK", "0") or 0) > 0:  # under torchrun, rank 0 says it for all
            return 130
        raise
    if result["rank"] > 0:
        return 0
    last = result["history"][-1] if result["history"] else {}
    print(f"best validation accuracy {result['best_val_acc']:.4f}; final epoch: {json.dumps(last)}")
    print(f"wrote {result['best']} and {result['last']}")
    return 0


# --- evaluate ---------------------------------------------------------------------------------

def cmd_evaluate(args) -> int:
    from .data import load_dataset
    from .evaluation import evaluate
    from .labels import charset_indices
    from .runtime.recognizer import Recognizer

    rec = Recognizer(args.checkpoint, runtime=args.runtime)
    charset_indices(rec.classes, args.charset)  # a charset the model cannot answer in fails before any download
    if rec.card.task == "ctc":
        from .cli_read import cmd_evaluate_lines

        args.dataset = args.dataset or "unipen-words"
        return cmd_evaluate_lines(args, rec)
    args.dataset = args.dataset or "mnist"
    ds = load_dataset(args.dataset, args.split, args.data_dir, progress=True)
    result = evaluate(rec, ds, charset=args.charset, reframe=args.reframe, progress=True)  # a bar on stderr
    paths = result.write_report(Path(args.out), title=f"Scrawl evaluation: {args.dataset}")
    metrics = result.metrics
    merged = f", merged-case accuracy {metrics['merged_accuracy']:.4%}" if "merged_accuracy" in metrics else ""
    print(f"{args.dataset} {args.split}: accuracy {metrics['accuracy']:.4%} ({metrics['errors']} errors / {metrics['n']})"
          f"{merged}, loss {metrics['loss']:.4f}")
    unsure, acc = metrics["uncertain_count"], metrics["confident_accuracy"]
    print(f"uncertain (confidence below {metrics['uncertain_below']:.0%}): {unsure} of {metrics['n']}; accuracy on "
          f"the {metrics['n'] - unsure} confident answers {'-' if acc is None else format(acc, '.4%')}")
    print(f"report: {paths.get('report', Path(args.out) / 'report.md')}")
    return 0


# --- predict ----------------------------------------------------------------------------------

def cmd_predict(args) -> int:
    from .cli_read import read_hint, several_characters
    from .runtime.batch import FramePool, expand_paths, predict_files
    from .runtime.recognizer import Recognizer, resolve_model

    if args.top_k < 1:
        raise ScrawlError("--top-k must be at least 1")
    paths = expand_paths(args.paths)
    resolve_model(args.model, args.runtime)  # a wrong model fails before any worker starts
    with FramePool.start(len(paths)) as pool:  # many files: workers frame them; they start while the model loads
        rec = Recognizer(args.model, runtime=args.runtime, threads=1 if pool else None, optimize=bool(pool))
        failures = unsure = 0
        width = max([len(p) for p in paths] + [4])
        if not args.json:
            print(f"{'path':<{width}} {'label':>5} {'conf':>7}    top-{args.top_k}")
        bar = bool(pool) and sys.stderr.isatty() and not sys.stdout.isatty()  # answers go to a file: a bar
        for path, pred in predict_files(rec, paths, top_k=args.top_k, charset=args.charset, pool=pool, progress=bar):
            if isinstance(pred, ScrawlError):
                failures += 1
                print(json.dumps({"path": path, "error": str(pred)}) if args.json else f"{path:<{width}} error: {pred}",
                      flush=True)
                continue
            uncertain = pred.confidence < settings.UNCERTAIN_BELOW  # the web API's rule
            unsure += uncertain
            several = 0 if pool else several_characters(path)  # a few files: worth a look at each
            hint = {"several_characters": several, "hint": read_hint(path, several)} if several > 1 else {}
            if args.json:
                print(json.dumps({"path": path, **pred.to_dict(), "uncertain": uncertain, **hint}), flush=True)
            else:
                alts = "  ".join(f"{c} {p:6.1%}" for c, p in pred.top_k)
                print(f"{path:<{width}} {pred.label:>5} {pred.confidence:7.1%} {'?' if uncertain else ' '}  {alts}"
                      + (f"\n  note: {hint['hint']}" if hint else ""), flush=True)
    if unsure and not args.json:
        print(f"? = uncertain ({unsure} of {len(paths)}): confidence below {settings.UNCERTAIN_BELOW:.0%}, "
              "look at the alternatives")
    if failures and not args.json:
        print(f"{failures} of {len(paths)} inputs could not be read", file=sys.stderr)
    return 1 if failures else 0


# --- export -----------------------------------------------------------------------------------

def cmd_export(args) -> int:
    from .runtime.export import export_onnx

    result = export_onnx(args.checkpoint, args.out, check_images=args.check, int8=args.int8,
                         data_dir=args.data_dir, calibration=args.calibration)
    print(f"wrote {result['onnx']} ({result['bytes'] / 2**20:.2f} MiB) and {result['sidecar']}")
    print(f"ONNX Runtime matches PyTorch: max |logit difference| {result['max_abs_diff']:.2g} on "
          f"{result['images']} real images (batches of {', '.join(map(str, result['batch_sizes']))})"
          + (", before quantization" if result["int8"] else ""))
    if result["int8"]:
        c = result["int8"]
        print(f"int8 answers agree with float on {c['agreement']:.2%} of {c['images']} held-out images; "
              f"accuracy on the validation part: float {c['accuracy_float']:.2%}, int8 {c['accuracy_int8']:.2%}; "
              f"max |probability difference| {c['max_abs_prob_diff']:.3f}")
    command = "read" if result.get("task") == "ctc" else "predict"
    print(f"use it with: scrawl {command} --runtime onnx --model {result['onnx']} IMAGE...")
    return 0


# --- serve ------------------------------------------------------------------------------------

def cmd_serve(args) -> int:
    models = [m.strip() for spec in (args.model or []) for m in spec.split(",") if m.strip()]
    if not 0 < args.port < 65536:
        raise ScrawlError(f"--port must be in 1..65535, got {args.port}")
    if not args.max_body_mb > 0:
        raise ScrawlError(f"--max-body-mb must be positive, got {args.max_body_mb:g}")
    if args.max_queue < 0 or not args.request_timeout > 0:
        raise ScrawlError("--max-queue must be 0 or more and --request-timeout positive")
    import uvicorn

    from .web import create_app

    app = create_app(models or None, max_body_bytes=int(args.max_body_mb * 2**20),  # None: all bundled models
                     max_queue=args.max_queue, request_timeout=args.request_timeout, runtime=args.runtime)
    models = list(app.state.service.sources)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    if args.host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"  # listening everywhere; this machine reaches it on the loopback address
    print(f"Scrawl is starting with model(s) {', '.join(models)}: open http://{shown}:{args.port}/ "
          f"(API docs: http://{shown}:{args.port}/docs). Ctrl+C stops it.", flush=True)
    # The app logs each request itself (logger scrawl.web.access, the same under any server): here, one
    # bare line per request on stderr, or none with --quiet. Not through the root logger too (-v would
    # show it twice), and uvicorn's own access log stays off.
    access = logging.getLogger("scrawl.web.access")
    access.setLevel(logging.WARNING if args.quiet else logging.INFO)
    access.propagate = False
    if not args.quiet and not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning",
                access_log=False)
    return 0
