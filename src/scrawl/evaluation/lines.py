"""Evaluating a line model: read a set of line images the way a user's images are read (through
`Recognizer.read`: ink map, line splitting, framing, decoding) and score the texts.

* `line_test_set(name, data_dir, limit, seed)`: "unipen-words" (the real UNIPEN words and texts of the
  validation writers, writer-disjoint from training (`writer_split`, the training recipe's seed), rendered
  from their pen strokes in seeded random styles with the writer's pen width, half of them as photos of
  paper) or "touching-digits"
  (issue 13's bar: 3-10 MNIST *test* digits per string, neighbours overlapping by up to 30%).
* `evaluate_lines(rec, test_set, ...)` -> `LineEvaluation`: character error rate, word error rate,
  exact lines, word accuracy (with and without a word prior when a lexicon is given), CER by line
  length and by writer, the most confused characters and the worst lines; `write_report` draws them.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ScrawlError

LINE_SETS = ("unipen-words", "touching-digits")
RENDER_HEIGHT = 64  # test lines are rendered this high, then read as any user image (framed to the model's 32)
LENGTH_BINS = ((1, 3), (4, 6), (7, 10), (11, 20), (21, 1000))  # CER by text length (characters)


@dataclass
class LineTestSet:
    name: str
    images: list  # uint8 (H, W), dark ink on a light background, as a scan or photo would give
    texts: list[str]
    writers: list[str]  # who wrote each line ("" when not known)
    description: str


def line_test_set(name: str, data_dir=None, *, limit: int | None = None, seed: int = 0, skip: int = 0) -> LineTestSet:
    """One of LINE_SETS (see the module docstring); `limit` keeps the first N lines. unipen-words: `skip`
    passes over the first lines of the (seeded) order, so that settings tuned on `limit=400, skip=2000` are
    tuned on other lines than the 2,000 the benchmarks report."""
    rng = np.random.default_rng(seed)
    if name == "touching-digits":
        from ..data import load_dataset
        from ..data.synth import touching_digit_strings

        mnist = load_dataset("mnist", "test", data_dir)
        pairs = touching_digit_strings(mnist.images.numpy(), mnist.labels.tolist(), limit or 1000, seed=seed)
        images = [255 - _pad(im) for im, _ in pairs]
        return LineTestSet(name, images, [t for _, t in pairs], [""] * len(pairs),
                           "3-10 MNIST test digits per string, neighbours overlapping by up to 30% of a digit's width")
    if name == "unipen-words":
        from ..data.download import ensure_files
        from ..data.lines import load_unipen_words
        from ..data.strokes import augment_paper

        words = load_unipen_words(ensure_files("unipen-words", "train", data_dir)["arrays"])
        _, val_rows = words.writer_split(0.1, seed)
        if limit or skip:
            val_rows = np.sort(rng.permutation(val_rows)[skip : skip + limit if limit else None])
        images = []
        for i in val_rows:
            # The pen is sized against the writer's usual word height, as a real pen keeps its width
            # however long the line: sized against the image, a long sloping sentence shrunk to fit
            # came out as blobs no reader could read (docs/results/line-unipen: README, issue 13).
            line = augment_paper(words.render(int(i), RENDER_HEIGHT, rng=rng, writer_pen=True), rng, paper=0.5)
            images.append(255 - _pad(line))
        return LineTestSet(name, images, [str(t) for t in words.labels[val_rows]],
                           [str(w) for w in words.writers[val_rows]],
                           f"UNIPEN words and texts of the validation writers (writer_split(0.1, seed {seed})), "
                           "rendered from their pen strokes with the writer's pen width, half as photos of paper")
    raise ScrawlError(f"unknown line test set {name!r}; choose one of: {', '.join(LINE_SETS)}")


def _pad(image: np.ndarray, k: int = 8) -> np.ndarray:
    return np.pad(image, k)


@dataclass
class LineEvaluation:
    metrics: dict
    texts: list[str] = field(repr=False)
    read: list[str] = field(repr=False)
    images: list = field(repr=False)
    info: dict = field(default_factory=dict)

    def write_report(self, out_dir: str | os.PathLike, max_lines: int = 24) -> dict[str, Path]:
        from .line_report import write_line_report

        return write_line_report(Path(out_dir), self, max_lines)


def evaluate_lines(rec, test: LineTestSet, *, charset: str | None = None, lexicon=None,
                   progress: bool = False) -> LineEvaluation:
    """Read every image of `test` with `rec` (a line model) as `scrawl read` does by default (the text is
    the best of the prefix beam search's n-best) and score it; with `lexicon`, also read with the word
    prior and report both."""
    from tqdm.auto import tqdm

    from ..errors import ImageError

    def read(image, **options) -> str:
        try:
            return rec.read(image, charset=charset, **options).text.replace("\n", " ")
        except ImageError:  # nothing legible: an empty reading
            return ""

    plain, primed = [], []
    for image in tqdm(test.images, desc=f"reading {test.name}", unit="line", disable=not progress):
        plain.append(read(image))  # the default top_k, as users read (the best path alone: +0.56 CER points, 8 Dec)
        if lexicon is not None:
            primed.append(read(image, top_k=8, lexicon=lexicon))
    metrics = line_metrics(test.texts, plain, test.writers)
    if lexicon is not None:
        with_prior = line_metrics(test.texts, primed, test.writers)
        metrics["with_word_prior"] = {k: with_prior[k] for k in ("cer", "wer", "exact", "word_accuracy")}
    info = {"model": rec.name, "arch": rec.card.arch, "dataset": test.name, "description": test.description,
            "charset": charset or "all", "lines": len(test.texts)}
    return LineEvaluation(metrics, test.texts, plain, test.images, info)


def line_metrics(truth: list[str], read: list[str], writers: list[str] | None = None) -> dict:
    """CER, WER, exact lines and word accuracy, by length and by writer, and the most confused characters."""
    from rapidfuzz.distance import Levenshtein

    edits = [Levenshtein.distance(t, r) for t, r in zip(truth, read)]
    n_chars = sum(len(t) for t in truth)
    word_edits = sum(Levenshtein.distance(t.split(), r.split()) for t, r in zip(truth, read))
    n_words = sum(len(t.split()) for t in truth)
    right_words = sum(_words_right(t, r) for t, r in zip(truth, read))
    by_length = {}
    for lo, hi in LENGTH_BINS:
        idx = [i for i, t in enumerate(truth) if lo <= len(t) <= hi]
        if idx:
            by_length[f"{lo}-{hi}" if hi < 1000 else f"{lo}+"] = {
                "lines": len(idx), "cer": sum(edits[i] for i in idx) / max(1, sum(len(truth[i]) for i in idx))}
    by_writer = defaultdict(lambda: [0, 0, 0])
    for i, w in enumerate(writers or [""] * len(truth)):
        if w:
            by_writer[w][0] += edits[i]
            by_writer[w][1] += len(truth[i])
            by_writer[w][2] += 1
    writer_cer = sorted(({"writer": w, "lines": n, "cer": e / max(1, c)} for w, (e, c, n) in by_writer.items()),
                        key=lambda d: -d["cer"])
    return {"n": len(truth), "cer": sum(edits) / max(1, n_chars), "wer": word_edits / max(1, n_words),
            "exact": float(np.mean([t == r for t, r in zip(truth, read)])) if truth else 0.0,
            "word_accuracy": right_words / max(1, n_words), "characters": n_chars, "words": n_words,
            "cer_by_length": by_length, "cer_by_writer": writer_cer, "confusions": confusions(truth, read)}


def _words_right(truth: str, read: str) -> int:
    """Words of `truth` read exactly, matched in order (words not edited by the word-level alignment)."""
    from rapidfuzz.distance import Levenshtein

    t, r = truth.split(), read.split()
    wrong = sum(1 for op in Levenshtein.editops(t, r) if op.tag in ("replace", "delete"))
    return len(t) - wrong


def confusions(truth: list[str], read: list[str], top: int = 20) -> list[dict]:
    """The most frequent character substitutions, deletions ("" read) and insertions ("" true)."""
    from rapidfuzz.distance import Levenshtein

    counts: Counter = Counter()
    for t, r in zip(truth, read):
        for op in Levenshtein.editops(t, r):
            a = t[op.src_pos] if op.tag != "insert" else ""
            b = r[op.dest_pos] if op.tag != "delete" else ""
            counts[(a, b)] += 1
    return [{"true": a, "read": b, "count": n} for (a, b), n in counts.most_common(top)]

