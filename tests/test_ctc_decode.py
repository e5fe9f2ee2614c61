"""Decoding a line model's outputs (scrawl.tasks.ctc, scrawl.tasks.lexicon, scrawl.runtime.reader):
forced alignment against best path and against brute force, alignment refusing texts it cannot spell,
beam search with its per-frame pruning against brute force and against itself without pruning, charset
masks through the whole reader (a digits-only read never holds a letter), and the word prior (never
changes a token with digits, prefers common words among the model's own candidates, user word lists, and
re-spells a word from its known one-edit neighbours).
test_ctc.py covers greedy decoding, the loss and beam search on plain inputs; this file does not repeat it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrawl.errors import ScrawlError
from scrawl.labels import LINE_ALPHABET
from scrawl.runtime.reader import allowed_classes, read_image
from scrawl.tasks import ctc
from scrawl.tasks.ctc import BLANK, align, beam_search, greedy, log_softmax
from scrawl.tasks.lexicon import Lexicon
from scrawl.vision.framing import line_spec

ABC = ["a", "b", "1"]


def _logp(rng: np.random.Generator, frames: int, outputs: int, sharp: float = 2.0) -> np.ndarray:
    return log_softmax(rng.normal(size=(frames, outputs)) * sharp)


def _collapse(path, classes) -> str:
    return "".join(classes[c - 1] for i, c in enumerate(path) if c != BLANK and (i == 0 or c != path[i - 1]))


def _paths(logp: np.ndarray, classes):
    """Every path with its log-probability and its text (tiny inputs only)."""
    for path in itertools.product(range(logp.shape[1]), repeat=logp.shape[0]):
        yield path, float(sum(logp[t, c] for t, c in enumerate(path))), _collapse(path, classes)


def _texts(logp: np.ndarray, classes) -> dict[str, float]:
    """Each text's probability: the sum over its paths."""
    out: dict[str, float] = {}
    for _, lp, text in _paths(logp, classes):
        out[text] = out.get(text, 0.0) + float(np.exp(lp))
    return out


def _spans(path, text: str) -> list[tuple[str, int, int]]:
    """The frames each character of `text` takes on a path (repeats of a character are one span)."""
    spans, t = [], 0
    for ch in text:
        while path[t] == BLANK or (spans and path[t] == path[t - 1] and t - 1 < spans[-1][2]):
            t += 1
        start = t
        while t + 1 < len(path) and path[t + 1] == path[start]:
            t += 1
        spans.append((ch, start, t + 1))
        t += 1
    return spans


# ---- forced alignment ---------------------------------------------------------------------------

@pytest.mark.parametrize("sharp", [1.0, 3.0, 8.0])
def test_align_of_the_best_path_text_is_the_best_path(sharp):
    rng = np.random.default_rng(int(sharp))
    classes = list("abcde")
    for _ in range(40):
        logp = _logp(rng, int(rng.integers(1, 40)), len(classes) + 1, sharp)
        best = greedy(np.exp(logp), classes)
        spans = align(logp, best.label, classes)
        assert spans is not None
        assert [(c.char, c.start, c.end) for c in spans] == [(c.char, c.start, c.end) for c in best.chars]
        assert [c.confidence for c in spans] == pytest.approx([c.confidence for c in best.chars], rel=1e-9)


def test_align_finds_the_most_probable_path_that_spells_the_text():
    rng = np.random.default_rng(7)
    for _ in range(12):
        logp = _logp(rng, 5, 4)
        best: dict[str, tuple[float, tuple]] = {}
        for path, lp, text in _paths(logp, ABC):
            if text not in best or lp > best[text][0]:
                best[text] = (lp, path)
        for text in rng.choice(sorted(best), 6, replace=False):
            spans = align(logp, str(text), ABC)
            want = _spans(best[text][1], str(text))
            assert [(c.char, c.start, c.end) for c in spans] == want
            for c in spans:
                k = ABC.index(c.char) + 1
                assert c.confidence == pytest.approx(float(np.exp(logp[c.start : c.end, k].max())))


def test_align_returns_none_when_no_path_spells_the_text():
    rng = np.random.default_rng(0)
    logp = _logp(rng, 4, 4)
    assert align(logp, "ab1ab", ABC) is None  # five characters in four frames
    assert align(logp, "aaa", ABC) is None  # a a blank a blank a: five frames needed
    assert align(logp[:3], "aa", ABC) is not None and align(logp[:2], "aa", ABC) is None
    assert align(logp, "ax", ABC) is None  # a character the model does not have
    masked = log_softmax(rng.normal(size=(6, 4)), allowed=[0, 2])  # "b" masked out
    assert align(masked, "b", ABC) is None and align(masked, "a1", ABC) is not None
    assert align(logp, "", ABC) == []
    assert align(logp[:0], "", ABC) == [] and align(logp[:0], "a", ABC) is None  # no frames at all


# ---- beam search and its pruning ----------------------------------------------------------------

def _peaky(rng: np.random.Generator, frames: int, outputs: int) -> np.ndarray:
    """Log-probabilities like a trained model's: most frames sure of one output, many outputs far below
    the pruning level, some frames torn between two."""
    z = rng.normal(size=(frames, outputs)) * 3
    z[np.arange(frames), rng.integers(0, outputs, frames)] += rng.uniform(4, 14, frames)
    return log_softmax(z)


@pytest.mark.parametrize("seed", range(6))
def test_pruned_beam_search_finds_the_brute_force_best(seed):
    rng = np.random.default_rng(seed)
    pruned_any = False
    for _ in range(8):
        logp = _peaky(rng, 5, 4) if rng.random() < 0.7 else _logp(rng, 5, 4)
        pruned_any |= bool((logp < ctc.BEAM_PRUNE).any())
        truth = _texts(logp, ABC)
        top = max(truth.values())
        got = beam_search(logp, ABC, beam=400)  # wider than all 364 prefixes: only pruning approximates
        # Pruning drops the paths through an output below BEAM_PRUNE in some frame: at most that much
        # probability per frame and output. Up to that, the texts and their probabilities are exact.
        dropped = logp.size * np.exp(ctc.BEAM_PRUNE)
        assert truth[got[0][0]] >= top - dropped
        if top > max([p for t, p in truth.items() if t != got[0][0]] + [0.0]) + dropped:
            assert got[0][0] == max(truth, key=truth.get)
        for text, p in got[:3]:
            assert truth[text] - dropped <= p <= truth[text] + 1e-12
    assert pruned_any  # the inputs do reach below the pruning level


def test_pruning_keeps_the_n_best_of_longer_lines(monkeypatch):
    rng = np.random.default_rng(11)
    classes = list("abcdefghi")
    for _ in range(10):
        logp = _peaky(rng, 40, len(classes) + 1)
        pruned = beam_search(logp, classes, beam=8)
        monkeypatch.setattr(ctc, "BEAM_PRUNE", -np.inf)
        full = beam_search(logp, classes, beam=8)
        monkeypatch.undo()
        assert pruned[0][0] == full[0][0]
        assert [t for t, _ in pruned[:3]] == [t for t, _ in full[:3]]
        # each pruned frame drops at most BEAM_PRUNE's share of a text's paths: 40 frames, a few percent
        assert [p for _, p in pruned[:3]] == pytest.approx([p for _, p in full[:3]], rel=40 * np.exp(ctc.BEAM_PRUNE))


def test_beam_search_on_no_frames_and_on_masked_outputs():
    assert beam_search(np.zeros((0, 4)), ABC) == [("", 1.0)]
    rng = np.random.default_rng(3)
    masked = log_softmax(rng.normal(size=(6, 4)) * 3, allowed=[2])
    assert all(set(text) <= {"1"} for text, _ in beam_search(masked, ABC))


# ---- charset masks ------------------------------------------------------------------------------

def test_allowed_classes_digits_number_and_letters():
    """digits: only digits and the space (a slanted 1 must not come back as "/"); number: digits and the
    marks numbers are written with; a set of letters keeps every mark and the space."""
    classes = list(LINE_ALPHABET)
    marks = set(LINE_ALPHABET) - set(LINE_ALPHABET[:62])
    digits = allowed_classes(classes, "digits")
    assert {classes[i] for i in digits} == set("0123456789 ")
    number = {classes[i] for i in allowed_classes(classes, "number")}
    assert number == set("0123456789 .,'-/:()+%#") and number < set("0123456789") | marks
    upper = {classes[i] for i in allowed_classes(classes, "upper")}
    assert upper == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ") | marks
    assert allowed_classes(classes, None) is None
    with pytest.raises(ScrawlError, match="unknown charset"):
        allowed_classes(classes, "greek")


class _StubLineModel:
    """What read_image needs of a Recognizer, with logits drawn at random for the framed image's width
    (seeded): letters made far more likely than digits, so a mask has something to take away; or fixed
    logits (T, C + 1) whatever the image."""

    def __init__(self, seed: int = 0, logits=None):
        self.classes = list(LINE_ALPHABET)
        self.spec = line_spec(32)
        self.name = "stub"
        self.card = type("Card", (), {"task": "ctc"})()
        self.rng = np.random.default_rng(seed)
        self.fixed = logits

    def logits(self, batch):
        if self.fixed is not None:
            return np.asarray(self.fixed, np.float32)[None]
        frames = batch.shape[-1] // 4
        z = self.rng.normal(size=(frames, len(self.classes) + 1)) * 2
        z[:, 1 + 10 : 1 + 62] += 3  # letters
        z[:, BLANK] += 2
        z[np.arange(frames), self.rng.integers(0, z.shape[1], frames)] += 6  # peaky, as a trained model is
        return z[None].astype(np.float32)


def _ink_line(width: int = 200, height: int = 40) -> np.ndarray:
    image = np.zeros((height, width), np.uint8)
    for x in range(6, width - 12, 16):
        image[8:32, x : x + 8] = 255
    return image


def test_a_digits_only_read_never_returns_a_letter():
    rec = _StubLineModel(seed=1)
    for _ in range(5):
        free = read_image(rec, _ink_line(120), top_k=5)
        assert any(c.isalpha() for c in free.text)  # without the mask the stub reads letters
        reading = read_image(rec, _ink_line(120), top_k=5, charset="digits")
        for line in reading.lines:
            texts = [line.text] + [t for t, _ in line.alternatives] + [c.char for c in line.chars]
            assert not any(ch.isalpha() for t in texts for ch in t)
            assert line.text and line.text == "".join(c.char for c in line.chars)


# ---- the word prior -----------------------------------------------------------------------------

_WORDS = st.sampled_from(["the", "tne", "cat", "cal", "1O5", "105", "lOS", "12/05", "12/06", "3.50", "$", "a1",
                          "word,", "(10)", "xylophone", "b4", ""])
_CANDIDATES = st.lists(st.tuples(st.lists(_WORDS, max_size=4).map(" ".join),
                                 st.floats(min_value=0.0, max_value=1.0)), max_size=8)


def _number_tokens(text: str) -> list[str]:
    return [t for t in text.split() if any(c.isdigit() for c in t)]


@settings(max_examples=150, deadline=None)
@given(_CANDIDATES)
def test_rerank_never_changes_a_token_with_digits(candidates):
    lexicon = Lexicon(["cal", "lOS"])
    out = lexicon.rerank(candidates)
    if not candidates:
        assert out == []
        return
    assert sorted(out) != [] and {t for t, _ in out} == {t for t, _ in candidates}  # only the model's own texts
    assert sum(p for _, p in out) == pytest.approx(sum(p for _, p in candidates))  # no probability made up
    numbers = _number_tokens(candidates[0][0])

    def choosable(t: str, p: float) -> bool:  # the model's numbers, and words unless it read none
        return _number_tokens(t) == numbers and p > 0 and bool(t.strip() or not candidates[0][0].strip())

    if any(choosable(t, p) for t, p in candidates):
        same = [choosable(t, p) for t, p in out]
        assert same[0] and same == sorted(same, reverse=True)  # the model's numbers first, the others after
        probs = [p for (_, p), keep in zip(out, same) if keep]
        assert probs == sorted(probs, reverse=True)


def test_rerank_prefers_common_words_among_the_model_candidates():
    lexicon = Lexicon()
    assert lexicon.rerank([("tne cat", 0.5), ("the cat", 0.4), ("tne cal", 0.1)])[0][0] == "the cat"
    assert lexicon.rerank([("I saw tne", 0.6), ("I saw the", 0.4)])[0][0] == "I saw the"
    # The prior only chooses among the model's texts: a common word it did not propose never appears.
    assert [t for t, _ in lexicon.rerank([("tne", 1.0)])] == ["tne"]
    # A rare word the model is sure of stays.
    assert lexicon.rerank([("xylophone", 0.99), ("the", 0.01)])[0][0] == "xylophone"
    # Digits: the model's number wins even where a word would be far more common.
    assert lexicon.rerank([("1O5 cats", 0.4), ("lOS cats", 0.35), ("105 cats", 0.25)]) == \
        [("1O5 cats", 0.4), ("lOS cats", 0.35), ("105 cats", 0.25)]
    assert lexicon.rerank([("at 12:30", 0.5), ("at 12:50", 0.5)])[0][0] == "at 12:30"
    assert Lexicon().prior("b4 12") == 0.0 and Lexicon().prior("the") > Lexicon().prior("tne")
    # A text without words costs no prior; it is never chosen over a reading, however strong the prior
    # (a "U" read as w, U, W, u, ... or nothing at 1%: the prior took nothing before this rule).
    candidates = [("w", 0.458), ("U", 0.243), ("W", 0.127), ("u", 0.104), ("4", 0.016), ("", 0.009)]
    for weight in (0.3, 0.6, 3.0):
        assert Lexicon(weight=weight).rerank(candidates)[0][0] != ""
    assert Lexicon().rerank([("", 0.6), ("a", 0.4)])[0][0] == ""  # the model's own best stays a candidate


def test_an_evaluation_keeps_its_readings_in_line_when_one_read_fails():
    from scrawl.errors import EmptyImageError
    from scrawl.evaluation.lines import LineTestSet, evaluate_lines

    class Reader:  # reads image i as "wi"; with the prior, image 1 is "nothing legible"
        name, card = "stub", type("Card", (), {"arch": "stub"})()

        def read(self, image, top_k=1, charset=None, lexicon=None):
            if lexicon is not None and image == 1:
                raise EmptyImageError("nothing legible")
            return type("Reading", (), {"text": f"w{image}"})()

    test = LineTestSet("stub", [0, 1, 2], ["w0", "w1", "w2"], ["", "", ""], "three lines")
    ev = evaluate_lines(Reader(), test, lexicon=Lexicon())
    assert ev.read == ["w0", "w1", "w2"] and ev.metrics["exact"] == 1.0
    assert ev.metrics["with_word_prior"]["exact"] == pytest.approx(2 / 3)


def test_user_word_lists(tmp_path):
    candidates = [("Zorbly met Qwixa", 0.55), ("Zarbly met Qwixa", 0.45)]
    assert Lexicon().rerank(candidates)[0][0] == "Zorbly met Qwixa"  # neither is a known word
    assert Lexicon(["zarbly"]).rerank(candidates)[0][0] == "Zarbly met Qwixa"
    assert Lexicon("Zarbly Qwixa").rerank(candidates)[0][0] == "Zarbly met Qwixa"  # a string of words
    assert Lexicon(["Zarbly,"]).zipf("zarbly") == Lexicon(["zarbly"]).zipf("zarbly")  # punctuation ignored
    # A listed word is never made rarer than the word frequencies know it to be.
    assert Lexicon(["the"]).zipf("the") == Lexicon().zipf("the") > 7
    words = tmp_path / "words.txt"
    words.write_text("Zarbly\nQwixa Plonk\n\n", encoding="utf-8")
    from_file = Lexicon.from_file(words)
    assert {"zarbly", "qwixa", "plonk"} <= from_file.own
    assert from_file.rerank(candidates)[0][0] == "Zarbly met Qwixa"
    only_mine = Lexicon(["zarbly"], language=None)
    assert only_mine.zipf("the") == only_mine.zipf("tne") < only_mine.zipf("Zarbly")
    with pytest.raises(ScrawlError, match="cannot read the word list"):
        Lexicon.from_file(tmp_path / "missing.txt")
    with pytest.raises(ScrawlError, match="language"):
        Lexicon(language="xx")


def test_the_reader_aligns_the_text_the_prior_chose():
    classes = list(LINE_ALPHABET)
    k = {c: classes.index(c) + 1 for c in "the n"}
    rows = [{k["t"]: 0.98}, {BLANK: 0.98}, {k["n"]: 0.55, k["h"]: 0.44}, {BLANK: 0.98}, {k["e"]: 0.98},
            {BLANK: 0.98}]
    logits = np.full((len(rows), len(classes) + 1), -12.0)
    for t, row in enumerate(rows):
        for j, p in row.items():
            logits[t, j] = np.log(p)
    rec = _StubLineModel(logits=logits)
    plain = read_image(rec, _ink_line(60), top_k=3)
    assert plain.text == "tne" and [t for t, _ in plain.lines[0].alternatives][:2] == ["tne", "the"]
    read = read_image(rec, _ink_line(60), top_k=3, lexicon=Lexicon())
    line = read.lines[0]
    assert line.text == "the" and "".join(c.char for c in line.chars) == "the"
    assert line.chars[1].confidence == pytest.approx(0.44, rel=0.05)  # the h's own frame, not the n's
    assert line.confidence == pytest.approx(line.chars[1].confidence)
    assert [c.box[0] for c in line.chars] == sorted(c.box[0] for c in line.chars)


def _word_logits(rows: list[dict[str, float]], classes: list[str]) -> np.ndarray:
    """Logits (T, C + 1) from a probability per character per frame ("_": the blank), the rest ~0."""
    logits = np.full((len(rows), len(classes) + 1), -12.0)
    for t, row in enumerate(rows):
        for ch, p in row.items():
            logits[t, BLANK if ch == "_" else classes.index(ch) + 1] = np.log(p)
    return logits


def _spelled(text: str, unsure: dict[int, dict[str, float]] | None = None) -> list[dict[str, float]]:
    """Frames that spell `text` (each character, then a blank), with other readings of some characters."""
    rows = []
    for i, ch in enumerate(text):
        rows += [(unsure or {}).get(i, {ch: 0.98}), {"_": 0.98}]
    return rows


def test_search_respells_a_word_from_its_one_edit_neighbours(monkeypatch):
    from scrawl.tasks import lexicon as lexicon_module

    classes = list(LINE_ALPHABET)
    # "wcrld": the second letter's frame reads c at 0.85 and o at 0.12, in a line of two words.
    logp = log_softmax(_word_logits(_spelled("hi wcrld", {4: {"c": 0.85, "o": 0.12}}), classes))
    candidates = beam_search(logp, classes, beam=8)
    assert candidates[0][0] == "hi wcrld"
    # With a beam of one spelling per word, "world" can only come from the known words one edit away.
    monkeypatch.setattr(lexicon_module, "WORD_BEAM", 1)
    lexicon = Lexicon(["world"], language=None)
    assert lexicon.respell(logp, "hi wcrld", align(logp, "hi wcrld", classes), classes) == "hi world"
    out = lexicon.search(logp, candidates, classes)
    assert out[0][0] == "hi world" and {t for t, _ in out} == {t for t, _ in candidates} | {"hi world"}
    assert out[0][1] <= sum(p for _, p in out)  # a share of the model's own probability, nothing made up
    # Unknown words stay as read; without a lexicon word near, nothing changes.
    assert Lexicon(["planet"], language=None).respell(logp, "hi wcrld", align(logp, "hi wcrld", classes),
                                                      classes) == "hi wcrld"
    # The reader uses it: its text, characters and boxes follow the re-spelled line.
    line = read_image(_StubLineModel(logits=_word_logits(_spelled("wcrld", {1: {"c": 0.85, "o": 0.12}}), classes)),
                      _ink_line(160), top_k=3, lexicon=lexicon).lines[0]
    assert line.text == "world" and "".join(c.char for c in line.chars) == "world"
    assert line.chars[1].confidence == pytest.approx(0.12, rel=0.1)  # the o as unsure as the model was


def test_search_never_touches_a_number():
    classes = list(LINE_ALPHABET)
    # "l0st 1O5": a word with a digit and a number, each one edit from a common word ("lost", "LOS").
    logp = log_softmax(_word_logits(_spelled("l0st 1O5 cats", {1: {"0": 0.6, "o": 0.39}}), classes))
    candidates = beam_search(logp, classes, beam=8)
    best = candidates[0][0]
    assert best == "l0st 1O5 cats"
    lexicon = Lexicon(["lost", "los"])
    assert lexicon.respell(logp, best, align(logp, best, classes), classes) == best
    assert lexicon.search(logp, candidates, classes)[0][0] == best


_WORD_CLASSES = list("abehtw01 ")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_respelling_keeps_the_words_with_digits_and_the_spaces(seed):
    rng = np.random.default_rng(seed)
    logp = _logp(rng, 14, len(_WORD_CLASSES) + 1, sharp=3.0)
    lexicon = Lexicon(["the", "be", "web", "bat", "hat", "a"], language=None)
    for text, _ in beam_search(logp, _WORD_CLASSES, beam=4):
        fixed = lexicon.respell(logp, text, align(logp, text, _WORD_CLASSES), _WORD_CLASSES)
        assert len(fixed.split(" ")) == len(text.split(" "))  # the spaces stay where they were
        for old, new in zip(text.split(" "), fixed.split(" ")):
            if any(c.isdigit() for c in old) or not any(c.isalpha() for c in old):
                assert new == old  # numbers and marks stay
            else:
                assert new and not any(c.isdigit() for c in new)  # a word never becomes a number
        assert ctc.text_logprob(logp, fixed, _WORD_CLASSES) > -np.inf  # a text the model can spell


@pytest.mark.parametrize("seed", range(4))
def test_text_logprob_sums_every_path_that_spells_the_text(seed):
    rng = np.random.default_rng(seed)
    logp = _logp(rng, 6, 3)
    brute = _texts(logp, "ab")
    for text, p in brute.items():
        assert ctc.text_logprob(logp, text, "ab") == pytest.approx(np.log(p), abs=1e-9)
    assert ctc.text_logprob(logp, "abababa", "ab") == -np.inf  # 7 characters need more than 6 frames
    assert ctc.text_logprob(logp, "z", "ab") == -np.inf
