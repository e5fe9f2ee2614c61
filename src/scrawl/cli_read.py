"""The line-model commands of the `scrawl` CLI: `scrawl read IMAGE...` (lines of handwriting -> text)
and `scrawl evaluate line` (a line model's CER / WER report). cli.py registers and dispatches them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import settings
from .errors import ScrawlError
from .labels import CHARSETS


def add_read(sub) -> None:
    rd = sub.add_parser("read", help="read lines of handwriting (numbers, words, whole lines and pages) as text")
    rd.add_argument("paths", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns to read")
    rd.add_argument("--model", default="line", help="bundled line model name or a line model file (default: line)")
    rd.add_argument("--json", action="store_true",
                    help="one JSON object per image: per line the text, confidence, approximate character boxes "
                         "(x0, y0, x1, y1 in pixels) and the n-best alternatives")
    rd.add_argument("--top-k", type=int, default=settings.TOP_K,
                    help=f"alternatives per line, best first (default: {settings.TOP_K})")
    rd.add_argument("--charset", choices=sorted(CHARSETS),
                    help="only these characters: digits reads only digits (and spaces), number digits and "
                         "the marks numbers are written with (. , ' - / : ( ) + %% #), a set of letters "
                         "keeps space and punctuation")
    rd.add_argument("--lexicon", nargs="?", const="", default=None, metavar="WORDS_FILE",
                    help="prefer common English words (wordfreq): re-rank the model's own readings, and re-spell a "
                         "word as a known word one edit away where the model finds that spelling likely enough; "
                         "give a file to add your own words (one or more per line). Never changes a number")
    rd.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                    help="torch (.pt) or onnx (an .onnx file from `scrawl export`; the bundled line.onnx for 'line')")


def cmd_read(args) -> int:
    from .runtime.batch import expand_images
    from .runtime.recognizer import Recognizer

    if args.top_k < 1 or args.top_k > settings.MAX_TOP_K:
        raise ScrawlError(f"--top-k must be between 1 and {settings.MAX_TOP_K}")
    lexicon = _lexicon(args.lexicon)
    paths = expand_images(args.paths)  # an error when only folders without images were given
    rec = Recognizer(args.model, runtime=args.runtime)
    if rec.card.task != "ctc":
        raise ScrawlError(f"{args.model} reads one character per image: `scrawl read` needs a line model "
                          "(--model line); for single characters use `scrawl predict`")
    failures = 0
    for path in paths:
        try:
            reading = rec.read(path, top_k=args.top_k, charset=args.charset, lexicon=lexicon)
        except ScrawlError as exc:
            failures += 1
            print(json.dumps({"path": path, "error": str(exc)}) if args.json else f"{path}: error: {exc}", flush=True)
            continue
        if args.json:
            print(json.dumps({"path": path, **reading.to_dict()}), flush=True)
            continue
        for k, line in enumerate(reading.lines):
            head = f"{path}:" if k == 0 else " " * (len(path) + 1)
            mark = "?" if line.uncertain else " "
            alts = "  ".join(f"{t!r} {p:.0%}" for t, p in line.alternatives[1:])
            print(f"{head} {line.text}  ({line.confidence:.0%}{mark}){'   or: ' + alts if alts else ''}", flush=True)
    if failures:
        print(f"{failures} of {len(paths)} images could not be read", file=sys.stderr)
    return 1 if failures else 0


# Ink this much wider than high is rarely one character (a digit's box is about 0.4-1.0 as wide as high).
WIDE_INK = 1.6


def several_characters(path) -> int:
    """How many characters the image at `path` seems to hold: the segmenter's pieces, and at least 2 when
    one piece is much wider than high (touching characters); 0 when it cannot tell."""
    from .vision.segment import segment

    try:
        pieces = segment(path).pieces
    except ScrawlError:
        return 0
    wide = any(p.box[2] > WIDE_INK * p.box[3] for p in pieces)  # box: x, y, w, h
    return max(len(pieces), 2 if wide else 0)


def read_hint(path: str, n: int) -> str:
    return f"{path} seems to hold {n} characters, not one: read it with `scrawl read {path}`"


def _lexicon(option):
    if option is None:
        return None
    from .tasks.lexicon import Lexicon

    return Lexicon.from_file(option) if option else Lexicon()


def cmd_evaluate_lines(args, rec) -> int:
    """`scrawl evaluate line --dataset unipen-words|touching-digits`: CER, WER, exact lines, a report."""
    from .evaluation.lines import LINE_SETS, evaluate_lines, line_test_set

    name = args.dataset if args.dataset in LINE_SETS else None
    if name is None:
        raise ScrawlError(f"a line model is evaluated on lines: --dataset {' or '.join(LINE_SETS)} (got {args.dataset})")
    test = line_test_set(name, args.data_dir, limit=args.limit or None)
    ev = evaluate_lines(rec, test, charset=args.charset, lexicon=_lexicon(args.lexicon), progress=True)
    paths = ev.write_report(Path(args.out))
    m = ev.metrics
    print(f"{name}: CER {m['cer']:.2%}, WER {m['wer']:.2%}, exact lines {m['exact']:.2%}, word accuracy "
          f"{m['word_accuracy']:.2%} ({m['n']} lines)")
    if "with_word_prior" in m:
        w = m["with_word_prior"]
        print(f"with the word prior: CER {w['cer']:.2%}, WER {w['wer']:.2%}, exact {w['exact']:.2%}, "
              f"word accuracy {w['word_accuracy']:.2%}")
    print(f"report: {paths['report']}")
    return 0
