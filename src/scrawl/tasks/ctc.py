"""The `ctc` task: one image of a line in, a sequence of characters out (Graves et al. 2006, CTC).

The model returns logits (N, T, C + 1) over T positions along the line: output 0 is CTC's blank, output
i + 1 is classes[i]. Training targets are (N, L) class indices padded with -1. Decoding collapses
repeats and drops blanks (greedy, best path) or searches prefixes (beam, for the n-best); both respect
a charset by masking outputs, and report each character's confidence and the positions it spans, from
which a reader can draw approximate boxes. Metrics: character and word error rates, exact lines.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .base import BatchScore, Task

BLANK = 0  # the output index of CTC's blank
PAD = -1  # pads target rows to the longest line of a batch


@dataclass
class CharSpan:
    """One decoded character: its probability (the best frame's) and the frames it spans."""

    char: str
    confidence: float
    start: int  # first frame (inclusive)
    end: int  # last frame (exclusive)


@dataclass
class LineAnswer:
    """One line's reading: the text, a confidence, its characters, and the n-best alternatives."""

    label: str
    confidence: float  # the least confident character's probability (1.0 for an empty line)
    chars: list[CharSpan] = field(default_factory=list)
    top_k: list[tuple[str, float]] = field(default_factory=list)  # (text, probability), best first


@dataclass
class Targets:
    """A batch's targets as CTC takes them, and as rows for comparing decoded lines."""

    padded: object  # (B, L) int64 class indices, -1 after each line's end
    flat: object  # the lines' outputs (index + 1) one after another
    lengths: object  # (B,) characters per line


def log_softmax(logits: np.ndarray, allowed: list[int] | None = None) -> np.ndarray:
    """Log-probabilities over the last axis in float64; class outputs not in `allowed` (class indices,
    None: all) get -inf. The blank is always allowed."""
    z = np.asarray(logits, dtype=np.float64)
    if allowed is not None:
        mask = np.full(z.shape[-1], -np.inf)
        mask[BLANK] = 0.0
        mask[np.asarray(allowed, dtype=np.int64) + 1] = 0.0
        z = z + mask
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def greedy(probs: np.ndarray, classes: Sequence[str]) -> LineAnswer:
    """Best path of one line's (T, C + 1) probabilities: repeats collapsed, blanks dropped."""
    best = probs.argmax(axis=1)
    chars: list[CharSpan] = []
    prev = BLANK
    for t, k in enumerate(best):
        k = int(k)
        if k != BLANK and k != prev:
            chars.append(CharSpan(classes[k - 1], float(probs[t, k]), t, t + 1))
        elif k != BLANK and chars:  # the same character held over another frame
            chars[-1].end = t + 1
            chars[-1].confidence = max(chars[-1].confidence, float(probs[t, k]))
        prev = k
    text = "".join(c.char for c in chars)
    return LineAnswer(text, min((c.confidence for c in chars), default=1.0), chars)


# Beam search only extends a prefix by outputs at least this probable in a frame (plus the frame's best):
# a path through a 1e-3 output is at most 1e-3 as likely as the same path through the frame's best, so it
# rarely reaches an n-best list, and skipping them makes the search many times faster on real lines.
BEAM_PRUNE = np.log(1e-3)
# ... and by no more than the frame's `beam + SAME_TEXT` best outputs: a path through a lower one has at
# least `beam` more probable neighbours that differ in that frame only and spell other texts (at most
# SAME_TEXT of the swaps, to blank or to the characters on either side, can spell the same text).
SAME_TEXT = 3


def _lae(a: float, b: float) -> float:
    """ln(e^a + e^b) on Python floats (numpy's ufunc costs a microsecond a call; the beam makes thousands)."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def beam_search(logp: np.ndarray, classes: Sequence[str], beam: int = 8) -> list[tuple[str, float]]:
    """CTC prefix beam search (Hannun et al. 2014, without a language model) over one line's (T, C + 1)
    log-probabilities: the `beam` most probable texts with their probabilities, best first."""
    # prefix -> (log p ending in blank, log p ending in its last character)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}
    keep = (logp >= np.minimum(BEAM_PRUNE, logp.max(axis=1, keepdims=True))) & np.isfinite(logp)
    most = beam + SAME_TEXT
    if logp.shape[1] > most:
        keep &= logp >= -np.partition(-logp, most - 1, axis=1)[:, most - 1 : most]  # (T, 1): the most-th best
    for t in range(logp.shape[0]):
        cand = np.flatnonzero(keep[t]).tolist()
        row = logp[t].tolist()
        if cand == [BLANK]:  # a frame of blank only (most of a line): every prefix just waits
            p = row[BLANK]
            beams = {k: (_lae(pb, pnb) + p, -math.inf) for k, (pb, pnb) in beams.items()}
            continue
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (pb, pnb) in beams.items():
            total = _lae(pb, pnb)
            for k in cand:
                p = row[k]
                if k == BLANK:
                    entry = nxt[prefix]
                    entry[0] = _lae(entry[0], total + p)
                    continue
                entry = nxt[prefix + (k,)]
                if prefix and prefix[-1] == k:  # a repeat needs a blank between the two characters
                    entry[1] = _lae(entry[1], pb + p)
                    same = nxt[prefix]
                    same[1] = _lae(same[1], pnb + p)
                else:
                    entry[1] = _lae(entry[1], total + p)
        ranked = heapq.nlargest(beam, nxt.items(), key=lambda kv: _lae(*kv[1]))
        beams = {k: (v[0], v[1]) for k, v in ranked}
    out = [("".join(classes[k - 1] for k in prefix), math.exp(_lae(pb, pnb))) for prefix, (pb, pnb) in beams.items()]
    return sorted(out, key=lambda x: -x[1])


@functools.lru_cache(maxsize=8)
def output_index(classes: tuple[str, ...]) -> dict[str, int]:
    """Each class's output (index + 1), made once per alphabet: a word search scores thousands of texts."""
    return {c: i + 1 for i, c in enumerate(classes)}


def align(logp: np.ndarray, text: str, classes: Sequence[str]) -> list[CharSpan] | None:
    """Where each character of `text` sits in one line's (T, C + 1) log-probabilities: the most probable
    CTC path that spells it (Viterbi forced alignment), as spans with each character's best frame
    probability. None when no path spells it (too few frames, or a masked character)."""
    index = output_index(tuple(classes))
    if any(c not in index for c in text):
        return None
    ext = [BLANK]
    for c in text:
        ext += [index[c], BLANK]  # blank, c1, blank, c2, ..., blank
    n, frames = len(ext), logp.shape[0]
    if frames == 0:
        return [] if not text else None
    score = np.full(n, -np.inf)
    score[0] = logp[0, ext[0]]
    if n > 1:
        score[1] = logp[0, ext[1]]
    back = np.zeros((frames, n), np.int8)  # how far back each state came from: 0, 1 or 2
    ext_a = np.array(ext)
    skip_ok = np.zeros(n, bool)  # a state may skip the blank before it: a character unlike the one before
    skip_ok[2:] = (ext_a[2:] != BLANK) & (ext_a[2:] != ext_a[:-2])
    for t in range(1, frames):
        stay, step, jump = score, np.full(n, -np.inf), np.full(n, -np.inf)
        step[1:] = score[:-1]
        jump[2:] = np.where(skip_ok[2:], score[:-2], -np.inf)
        best = np.argmax(np.stack([stay, step, jump]), axis=0)
        score = np.choose(best, [stay, step, jump]) + logp[t, ext_a]
        back[t] = best
    end = n - 1 if n == 1 or score[n - 1] >= score[n - 2] else n - 2
    if not np.isfinite(score[end]):
        return None
    states = np.empty(frames, np.int64)
    for t in range(frames - 1, -1, -1):
        states[t] = end
        end -= int(back[t, end])
    spans: list[CharSpan] = []
    for k in range(len(text)):
        where = np.flatnonzero(states == 2 * k + 1)
        probs = np.exp(logp[where, ext[2 * k + 1]])
        spans.append(CharSpan(text[k], float(probs.max()), int(where[0]), int(where[-1]) + 1))
    return spans


def text_logprob(logp: np.ndarray, text: str, classes: Sequence[str]) -> float:
    """ln P(text) under one line's (T, C + 1) CTC log-probabilities: the sum over every path that spells
    it (the CTC forward algorithm, Graves et al. 2006, section 4.1). -inf when no path does."""
    index = output_index(tuple(classes))
    if any(c not in index for c in text) or logp.shape[0] == 0:
        return -np.inf
    ext = np.array([BLANK] + [x for c in text for x in (index[c], BLANK)])
    n = len(ext)
    skip_ok = np.zeros(n, bool)
    skip_ok[2:] = (ext[2:] != BLANK) & (ext[2:] != ext[:-2])  # a blank may be skipped between unequal characters
    emit = logp[:, ext]  # (T, n): each state's log-probability in each frame, gathered once
    alpha = np.full(n, -np.inf)
    alpha[: min(2, n)] = emit[0, : min(2, n)]
    # from the state before (step) and from two before (jump, where allowed); -inf where there is none.
    # Filled in place: a read's line has hundreds of frames, and new arrays per frame cost more than the sums.
    step, jump = np.full(n, -np.inf), np.full(n, -np.inf)
    for t in range(1, logp.shape[0]):
        step[1:] = alpha[:-1]
        np.copyto(jump[2:], alpha[:-2], where=skip_ok[2:])
        alpha = np.logaddexp(np.logaddexp(alpha, step), jump) + emit[t]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if n > 1 else alpha[-1])


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (of characters or of words)."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(a, b))


class CTCTask(Task):
    name = "ctc"

    def model_config(self, classes: Sequence[str]) -> dict:
        return {"num_classes": len(classes) + 1}  # + the blank

    def collate(self, targets) -> Targets:
        """(B, L) class indices padded with -1 -> Targets (flat outputs index + 1, lengths)."""
        import torch

        lengths = (targets != PAD).sum(dim=1).to(torch.long)
        return Targets(targets, (targets[targets != PAD] + 1).to(torch.long), lengths)

    def _ctc(self, logits, targets: Targets, reduction: str):
        import torch
        import torch.nn.functional as F

        logp = F.log_softmax(logits.float(), dim=2).transpose(0, 1)  # (T, B, C + 1)
        frames = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long, device=logits.device)
        return F.ctc_loss(logp, targets.flat, frames, targets.lengths, blank=BLANK, reduction=reduction,
                          zero_infinity=True)

    def loss(self, logits, targets, *, label_smoothing: float = 0.0):
        return self._ctc(logits, targets, "mean")  # label smoothing has no meaning here

    def _exact(self, logits, targets: Targets) -> int:
        best, rows = logits.argmax(dim=2).cpu().numpy(), targets.padded.cpu().numpy()
        right = 0
        for path, row in zip(best, rows):
            keep = path[(path != BLANK) & np.r_[True, path[1:] != path[:-1]]] - 1
            right += int(np.array_equal(keep, row[row != PAD]))
        return right

    def score(self, logits, targets, loss: float) -> BatchScore:
        n = int(logits.shape[0])
        return BatchScore(loss * n, self._exact(logits, targets), n)

    def validate(self, logits, targets) -> BatchScore:
        # per line divided by its length, as the training loss ("mean" reduction) is: comparable figures
        loss = (self._ctc(logits, targets, "none") / targets.lengths.clamp_min(1)).sum()
        return BatchScore(float(loss), self._exact(logits, targets), int(logits.shape[0]))

    def probabilities(self, logits: np.ndarray, allowed: list[int] | None = None) -> np.ndarray:
        return np.exp(log_softmax(logits, allowed)).astype(np.float32)

    def decode(self, probs: np.ndarray, classes: Sequence[str], top_k: int,
               allowed: list[int] | None = None) -> list[LineAnswer]:
        out = []
        for line in np.asarray(probs):
            answer = greedy(line, classes)
            if top_k > 1:
                with np.errstate(divide="ignore"):
                    answer.top_k = beam_search(np.log(line.astype(np.float64)), classes, beam=max(top_k, 4))[:top_k]
            else:
                answer.top_k = [(answer.label, answer.confidence)]
            out.append(answer)
        return out

    def metrics(self, targets: Sequence[str], probs: np.ndarray, classes: Sequence[str]) -> dict:
        """`targets`: the true texts. Character error rate (edits / characters), word error rate
        (word edits / words), exact lines."""
        texts = [greedy(p, classes).label for p in np.asarray(probs)]
        char_edits = sum(edit_distance(t, h) for t, h in zip(targets, texts))
        word_edits = sum(edit_distance(t.split(), h.split()) for t, h in zip(targets, texts))
        n_chars = sum(len(t) for t in targets)
        n_words = sum(len(t.split()) for t in targets)
        return {"n": len(texts), "cer": char_edits / max(1, n_chars), "wer": word_edits / max(1, n_words),
                "exact": float(np.mean([t == h for t, h in zip(targets, texts)])) if texts else 0.0,
                "characters": n_chars, "words": n_words}

    def output_spec(self, num_classes: int) -> dict:
        return {"name": "logits", "shape": ["N", "T", int(num_classes) + 1]}
