"""The `ctc` task: one image of a line in, a sequence of characters out (Graves et al. 2006, CTC).

The model returns logits (N, T, C + 1) over T positions along the line: output 0 is CTC's blank, output
i + 1 is classes[i]. Training targets are (N, L) class indices padded with -1. Decoding collapses
repeats and drops blanks (greedy, best path) or searches prefixes (beam, for the n-best); both respect
a charset by masking outputs, and report each character's confidence and the positions it spans, from
which a reader can draw approximate boxes. Metrics: character and word error rates, exact lines.
"""

from __future__ import annotations

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


def beam_search(logp: np.ndarray, classes: Sequence[str], beam: int = 8) -> list[tuple[str, float]]:
    """CTC prefix beam search (Hannun et al. 2014, without a language model) over one line's (T, C + 1)
    log-probabilities: the `beam` most probable texts with their probabilities, best first."""
    # prefix -> (log p ending in blank, log p ending in its last character)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -np.inf)}
    live = np.arange(logp.shape[1])
    for t in range(logp.shape[0]):
        row = logp[t]
        cand = live[np.isfinite(row)]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-np.inf, -np.inf])
        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            for k in cand:
                p = row[k]
                if k == BLANK:
                    entry = nxt[prefix]
                    entry[0] = np.logaddexp(entry[0], total + p)
                    continue
                ext = prefix + (int(k),)
                entry = nxt[ext]
                if prefix and prefix[-1] == k:  # a repeat needs a blank between the two characters
                    entry[1] = np.logaddexp(entry[1], pb + p)
                    same = nxt[prefix]
                    same[1] = np.logaddexp(same[1], pnb + p)
                else:
                    entry[1] = np.logaddexp(entry[1], total + p)
        ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:beam]
        beams = {k: (v[0], v[1]) for k, v in ranked}
    out = [("".join(classes[k - 1] for k in prefix), float(np.exp(np.logaddexp(pb, pnb))))
           for prefix, (pb, pnb) in beams.items()]
    return sorted(out, key=lambda x: -x[1])


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
        loss = self._ctc(logits, targets, "none").sum()
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
