"""An optional word prior for line reading: re-rank a line's n-best texts by how common their words are.

Word frequencies come from `wordfreq` (Speer et al., a maintained package that ships its tables offline:
English by default), plus a user's own word list, each of which counts as a common word. The prior
only ever chooses among the texts the model itself proposes (the beam's n-best), and never changes a
number: a candidate whose tokens holding digits differ from the model's best reading is not taken, so a
prior cannot turn "1O5" into "lOS" or a date into a word. Words with digits get no prior at all.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import ScrawlError

# A word's score is WEIGHT * ln(its frequency): 0.3 lets a common word beat a rarer spelling the model
# finds up to about e^(0.3 * 4.6) = 4x more likely for a 100x frequency ratio; chosen on UNIPEN's
# validation writers (benchmarks/read_lines.py reports word accuracy with and without the prior).
WEIGHT = 0.3
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
        kept = [(t, p) for t, p in candidates if _number_tokens(t) == numbers and p > 0]
        if not kept:
            return list(candidates)
        rest = [(t, p) for t, p in candidates if (t, p) not in kept]
        scores = [math.log(p) + self.prior(t) for t, p in kept]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        total, mass = sum(weights), sum(p for _, p in kept)
        ranked = sorted(zip(kept, weights), key=lambda kw: -kw[1])
        return [(t, mass * w / total) for (t, _), w in ranked] + rest


def _core(token: str) -> str:
    """A token without its leading and trailing punctuation ("(Hello," -> "Hello")."""
    return _CORE.match(token.strip()).group(1)


def _number_tokens(text: str) -> list[str]:
    """The tokens of a text that hold a digit, in order: what a prior must never change."""
    return [t for t in text.split() if any(c.isdigit() for c in t)]
