"""An optional word prior for line reading: re-rank a line's n-best texts by how common their words are,
and re-spell each word where the model and the prior together prefer another spelling.

Word frequencies come from `wordfreq` (Speer et al., a maintained package that ships its tables offline:
English by default), plus a user's own word list, each of which counts as a common word. `rerank` chooses
among the texts the model proposes (the beam's n-best); `search` also looks at each word of the best one
on its own frames: the beam's spellings of it and the known words one edit from them, each scored by the
model (CTC forward) plus the prior. Neither ever changes a number: a candidate whose tokens holding digits
differ from the model's best reading is not taken, words with digits are not re-spelled and get no prior,
and no re-spelling holds a digit, so a prior cannot turn "1O5" into "lOS" or a date into a word.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ScrawlError

# A word's score is WEIGHT * ln(its frequency): 0.3 lets a common word beat a rarer spelling the model
# finds up to about e^(0.3 * 4.6) = 4x more likely for a 100x frequency ratio, and keeps a rare word the
# model is sure of. benchmarks/word_prior.py compares weights on UNIPEN lines the other benchmarks do not
# report: stronger priors read those lists of common words better still (word accuracy with `search`
# 50.4% at 0.3, 54.0% at 0.6, 55.8% at 1.0; line-phrases' model), but would take a user's names and rare
# words from them.
WEIGHT = 0.3
# `search`: spellings of one word that its beam keeps, and how many of the best of them have their
# one-edit neighbours looked up among the VOCABULARY most common words (wordfreq's English 100,000 reach
# Zipf 2, about once per 10^7 words) and the user's own.
WORD_BEAM = 12
EDIT_FROM = 6
VOCABULARY = 100_000
MAX_ZIPF = 8.0  # no word is more common than this ("the": 7.7), which bounds what a prior can give a word
UNKNOWN_ZIPF = 1.0  # a word wordfreq does not know counts as this rare (Zipf 1: once per 10^8 words)
OWN_ZIPF = 5.0  # a word from the user's own list counts as at least this common ("about", "people")
_CORE = re.compile(r"^[^A-Za-z0-9]*(.*?)[^A-Za-z0-9]*$")  # a token without its leading/trailing punctuation


class Lexicon:
    """lexicon = Lexicon(); lexicon.rerank([("cat", 0.4), ("cal", 0.5)]) -> [("cat", ...), ("cal", ...)]

    words: the user's own words (any iterable of strings); language: wordfreq's language code, or None
    for the user's words only."""

    def __init__(self, words: Iterable[str] = (), language: str | None = "en", weight: float = WEIGHT):
        if isinstance(words, str):  # "one two three": words, not letters
            words = words.split()
        # A listed word is stored as a text's token is looked up: lower case, without its punctuation.
        self.own = {core.lower() for core in (_core(w) for w in words) if core}
        self.language = language
        self.weight = weight
        self._vocabulary: set[str] | None = None  # known words in lower case, made on first use (~0.3 s)
        if language is not None:
            try:
                import wordfreq
            except ImportError:  # pragma: no cover - a dependency of Scrawl
                raise ScrawlError("the word prior needs the wordfreq package: pip install wordfreq") from None
            if language not in wordfreq.available_languages():
                raise ScrawlError(f"no word frequencies for language {language!r}; wordfreq has: "
                                  f"{', '.join(sorted(wordfreq.available_languages()))}")

    @classmethod
    def from_file(cls, path: str | os.PathLike, language: str | None = "en") -> "Lexicon":
        """A word list file: one word (or several, separated by spaces) per line, UTF-8."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScrawlError(f"cannot read the word list {path}: {exc}") from None
        return cls(text.split(), language)

    def zipf(self, word: str) -> float:
        """How common a word is on the Zipf scale (log10 of occurrences per 10^9 words)."""
        w = word.lower()
        floor = OWN_ZIPF if w in self.own else UNKNOWN_ZIPF  # a listed word is at least this common
        if self.language is None:
            return floor
        from wordfreq import zipf_frequency

        return max(floor, zipf_frequency(w, self.language))

    def prior(self, text: str) -> float:
        """The text's log prior: WEIGHT * sum of ln(frequency) over its words without digits."""
        total = 0.0
        for token in text.split():
            core = _core(token)
            if core and not any(c.isdigit() for c in core):
                total += (self.zipf(core) - 9) * math.log(10)
        return self.weight * total

    def rerank(self, candidates: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """(text, probability) pairs, best first as the model ranks them -> the texts whose number tokens
        equal the first one's, re-ranked by ln(probability) + prior and sharing those texts' probability
        mass; then the others (readings of the numbers the prior may not choose), as the model ranks them,
        with their own probabilities."""
        if not candidates:
            return []
        numbers = _number_tokens(candidates[0][0])
        # A text without words has no word to pay a prior for: the prior never chooses it over a reading
        # (it would be the most probable text a prior could pick: a line read as "" instead of "w").
        kept = [(t, p) for t, p in candidates
                if _number_tokens(t) == numbers and p > 0 and (t.strip() or not candidates[0][0].strip())]
        if not kept:
            return list(candidates)
        rest = [(t, p) for t, p in candidates if (t, p) not in kept]
        scores = [math.log(p) + self.prior(t) for t, p in kept]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        total, mass = sum(weights), sum(p for _, p in kept)
        ranked = sorted(zip(kept, weights), key=lambda kw: -kw[1])
        return [(t, mass * w / total) for (t, _), w in ranked] + rest

    def search(self, logp: np.ndarray, candidates: list[tuple[str, float]],
               classes: Sequence[str]) -> list[tuple[str, float]]:
        """`rerank`, after each word of the best candidate is re-spelled on its own frames (`respell`) and
        the re-spelled text, with the model's probability of it, joins the candidates. logp: the line's
        (T, C + 1) CTC log-probabilities, from which `candidates` (its n-best) came."""
        from .ctc import align, text_logprob

        ranked = self.rerank(candidates)
        if not ranked:
            return ranked
        best = ranked[0][0]
        fixed = self.respell(logp, best, align(logp, best, classes), classes)
        if fixed == best or any(t == fixed for t, _ in candidates):  # nothing new (rerank has weighed it)
            return ranked
        return self.rerank(candidates + [(fixed, math.exp(text_logprob(logp, fixed, classes)))])

    def respell(self, logp: np.ndarray, text: str, spans, classes: Sequence[str]) -> str:
        """`text` with each word (between spaces) replaced by the spelling of its frames that scores best:
        ln P(spelling | those frames) + prior, over the frames' beam n-best (spaces masked) and the known
        words one edit from its EDIT_FROM best. spans: `text` aligned to the frames (ctc.align); None
        leaves the text as it is. Words holding a digit, or no letter, are kept."""
        if spans is None or len(spans) != len(text):
            return text
        space = classes.index(" ") + 1 if " " in classes else None
        letters = np.array([c.isalpha() for c in classes])
        ends = [i for i, c in enumerate(text) if c == " "] + [len(text)]
        words, start, first = [], 0, 0  # first: the word's first frame (after the space before it)
        for end in ends:
            last = spans[end].start if end < len(text) else logp.shape[0]  # up to the space after it
            word = text[start:end]
            words.append(self._best_spelling(logp[first:last], word, classes, space, letters) if word else word)
            if end < len(text):
                first = spans[end].end
            start = end + 1
        return " ".join(words)

    def _best_spelling(self, seg: np.ndarray, word: str, classes: Sequence[str], space: int | None,
                       letters: np.ndarray) -> str:
        from .ctc import beam_search, output_index, text_logprob

        core = _core(word)
        if not core or any(c.isdigit() for c in core) or not any(c.isalpha() for c in core):
            return word
        if space is not None:
            seg = seg.copy()
            seg[:, space] = -np.inf  # one word: no space inside it
        with np.errstate(divide="ignore"):
            scores = {t: math.log(p) for t, p in beam_search(seg, classes, beam=WORD_BEAM)
                      if t and p > 0 and not any(c.isdigit() for c in t)}
            # Each character's probability summed over the frames bounds the probability of any text that
            # holds it (every path spelling the text shows it in some frame).
            log_mass = np.log(np.exp(seg).sum(axis=0)) if len(seg) else np.full(seg.shape[1], -np.inf)  # (C + 1,)
        scores.setdefault(word, text_logprob(seg, word, classes))  # the line's own reading stays a candidate
        prior = {t: self.prior(t) for t in scores}
        best = max(scores[t] + prior[t] for t in scores)
        # Edits bring in only letters that could make a winner even as the most common word there is.
        ceiling = self.weight * (MAX_ZIPF - 9) * math.log(10)
        added = [classes[i] for i in np.flatnonzero(letters & (log_mass[1:] + ceiling > best))]
        vocabulary = self.vocabulary()
        near_words = set()
        for spelling in sorted(scores, key=scores.get, reverse=True)[:EDIT_FROM]:
            c = _core(spelling)
            if c:
                at = spelling.index(c)
                near_words.update(spelling[:at] + edit + spelling[at + len(c):] for edit in _edits(c, added)
                                  if edit.lower() in vocabulary)
        # Scored best bound first, until no bound can beat the best: the rest cannot win.
        index = output_index(tuple(classes))
        prior.update((t, self.prior(t)) for t in near_words - scores.keys())
        bounds = sorted(((min(log_mass[index[ch]] for ch in t) + prior[t], t) for t in near_words - scores.keys()),
                        reverse=True)
        for bound, near in bounds:
            if bound <= best:
                break
            scores[near] = text_logprob(seg, near, classes)
            best = max(best, scores[near] + prior[near])
        return max(scores, key=lambda t: scores[t] + prior[t])

    def vocabulary(self) -> set[str]:
        """The words `search` re-spells to (lower case): wordfreq's VOCABULARY most common and the user's."""
        if self._vocabulary is None:
            words = set(self.own)
            if self.language is not None:
                from wordfreq import top_n_list

                words.update(w.lower() for w in top_n_list(self.language, VOCABULARY))
            self._vocabulary = words
        return self._vocabulary


def _edits(word: str, letters: Sequence[str]) -> set[str]:
    """The strings one edit from `word` (Norvig's spelling corrector): a letter deleted, replaced or
    inserted, or two neighbours swapped."""
    cuts = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in cuts if b}
    out.update(a + b[1] + b[0] + b[2:] for a, b in cuts if len(b) > 1)
    out.update(a + c + b[1:] for a, b in cuts if b for c in letters)
    out.update(a + c + b for a, b in cuts for c in letters)
    out.discard(word)
    return out


def _core(token: str) -> str:
    """A token without its leading and trailing punctuation ("(Hello," -> "Hello")."""
    return _CORE.match(token.strip()).group(1)


def _number_tokens(text: str) -> list[str]:
    """The tokens of a text that hold a digit, in order: what a prior must never change."""
    return [t for t in text.split() if any(c.isdigit() for c in t)]
