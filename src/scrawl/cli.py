"""The `scrawl` command: data, train, evaluate, predict, read, export, serve (read: cli_read.py, train: cli_train.py).

The only module that prints. Every user mistake surfaces as a ScrawlError: one line on stderr,
exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
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
    from .cli_train import add_train

    for add in (_add_data, lambda sub: _data_dir_arg(add_train(sub)), _add_evaluate, _add_predict, add_read, _add_export, _add_serve):
        add(sub)
    return p


def _data_dir_arg(sp) -> None:
    sp.add_argument("--data-dir", help="folder holding the datasets (default: $SCRAWL_DATA, else a user cache folder)")


def _runtime_arg(sp, auto: bool = False) -> None:
    if auto:  # scrawl predict
        sp.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                        help="torch: PyTorch checkpoints (.pt); onnx: ONNX Runtime with models from `scrawl export` "
                             "(.onnx), without loading torch; auto: onnx for an .onnx file, and for a bundled model "
                             "over a folder (64 files or more: its int8 export where one is bundled (digits), else "
                             "its float .onnx; 2-2.6 times as fast as torch), else torch (default: auto)")
        return
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
    _runtime_arg(pr, auto=True)


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
                         "checked against the model's own training data; a line model is quantized without "
                         "calibration and checked on held-out lines (default output: NAME-int8.onnx)")
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
    from .cli_train import cmd_train

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
    except BrokenPipeError:  # the reader went away (`scrawl predict ... | head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own recipe: no flush error at exit
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


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
    if "calibration" in metrics:
        cal = metrics["calibration"]
        print(f"calibration: ECE {cal['ece']:.2%} ({cal['n_bins']} bins); rejected as not a character: "
              f"{metrics['rejected_count']} of {metrics['n']}")
    print(f"report: {paths.get('report', Path(args.out) / 'report.md')}")
    return 0


# --- predict ----------------------------------------------------------------------------------

def cmd_predict(args) -> int:
    from .cli_read import read_hint, several_characters
    from .runtime.batch import FramePool, expand_images, predict_files
    from .runtime.recognizer import Recognizer, resolve_model

    if args.top_k < 1:
        raise ScrawlError("--top-k must be at least 1")
    paths = expand_images(args.paths)  # an error when only folders without images were given
    args.runtime, args.model = _predict_runtime(args.runtime, args.model, len(paths))
    model = resolve_model(args.model, args.runtime)  # a wrong model fails before any worker starts
    # Many files: workers frame them (they start while the model loads here); an ONNX model the workers
    # load too, and they read the files to the end. PyTorch stays in this process (a second copy of
    # torch per worker costs seconds and hundreds of MB); its workers only frame.
    with FramePool.start(len(paths), model=model if args.runtime == "onnx" else None) as pool:
        rec = Recognizer(args.model, runtime=args.runtime, spin=not pool, optimize=bool(pool))
        rec.require_characters()
        failures = unsure = rejected = 0
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
            unsure += pred.uncertain  # the web API's rule: rejected, or confidence below UNCERTAIN_BELOW
            rejected += pred.rejected
            several = 0 if pool else several_characters(path)  # a few files: worth a look at each
            hint = {"several_characters": several, "hint": read_hint(path, several)} if several > 1 else {}
            if args.json:
                print(json.dumps({"path": path, **pred.to_dict(), "uncertain": pred.uncertain, **hint}), flush=True)
            else:
                print(_predict_row(path, width, pred) + (f"\n  note: {hint['hint']}" if hint else ""), flush=True)
    if rejected and not args.json:
        print(f"- = not a character ({rejected} of {len(paths)}): a tap, a dash, a scribble or several characters; "
              "the alternatives are the characters it looks most like")
    if unsure and not args.json:
        print(f"? = uncertain ({unsure} of {len(paths)}): confidence below {settings.UNCERTAIN_BELOW:.0%} "
              "or not a character, look at the alternatives")
    if failures and not args.json:
        print(f"{failures} of {len(paths)} inputs could not be read", file=sys.stderr)
    return 1 if failures else 0


def _predict_runtime(runtime: str, model: str | None, files: int) -> tuple[str, str | None]:
    """--runtime auto -> (runtime, model). ONNX Runtime for an .onnx file. A bundled model read over a
    folder (POOL_MIN_FILES files or more) runs in ONNX Runtime too: its bundled int8 export where there
    is one (digits: 15-35% faster than float on 2 AVX2 cores; on MNIST's 10,000 test digits 2 labels
    differ, both on answers marked uncertain: benchmarks/predict_folder.py), else its float .onnx (the
    same answers as PyTorch's, checked when exported, about twice as fast). PyTorch otherwise. An
    explicit runtime keeps the model asked for."""
    from .runtime.batch import POOL_MIN_FILES
    from .runtime.files import BUNDLED, DEFAULT_MODEL, bundled_int8_path, bundled_path

    if runtime != "auto":
        return runtime, model
    if model is None or model in BUNDLED:
        name = model or DEFAULT_MODEL
        if files < POOL_MIN_FILES or not bundled_path(name, "onnx").is_file():
            return "torch", model
        int8 = bundled_int8_path(name)
        return "onnx", (str(int8) if int8 else model)
    return ("onnx" if Path(model).suffix.lower() == ".onnx" else "torch"), model


def _predict_row(path: str, width: int, pred) -> str:
    """One row of `scrawl predict`'s table: a rejected image (not a character) shows "-" for its label,
    flagged uncertain, with the characters it looks most like and a note."""
    alts = "  ".join(f"{c} {p:6.1%}" for c, p in pred.top_k)
    label = "-" if pred.rejected else pred.label
    note = f"   (not a character: {pred.not_a_character:.1%})" if pred.rejected else ""
    return f"{path:<{width}} {label:>5} {pred.confidence:7.1%} {'?' if pred.uncertain else ' '}  {alts}{note}"


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
        if "lines" in c:  # a line model
            print(f"int8 reads {c['agreement']:.2%} of {c['lines']} held-out lines as the float model does; character "
                  f"error rate float {c['cer_float']:.2%}, int8 {c['cer_int8']:.2%}")
        else:
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
