"""The `ctc` task: targets, loss, greedy and beam decoding, charset masks, error rates, and a CRNN that
learns a toy line through the task's loss."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scrawl.models import build_model
from scrawl.tasks import get_task
from scrawl.tasks.ctc import PAD, beam_search, greedy, log_softmax

TASK = get_task("ctc")
ABC = ["a", "b", "1"]


def _probs(rows):
    """(T, 4) probabilities from rows of 'blank a b 1' weights."""
    p = np.asarray(rows, dtype=np.float64)
    return p / p.sum(1, keepdims=True)


def test_greedy_collapses_repeats_and_drops_blanks_with_spans():
    p = _probs([[0, 9, 0, 1], [0, 9, 0, 1], [9, 1, 0, 0], [0, 9, 0, 1], [0, 1, 9, 0], [9, 0, 0, 1]])
    ans = greedy(p, ABC)
    assert ans.label == "aab"  # a blank between the two a's keeps both
    assert [(c.char, c.start, c.end) for c in ans.chars] == [("a", 0, 2), ("a", 3, 4), ("b", 4, 5)]
    assert ans.confidence == pytest.approx(0.9)
    assert greedy(_probs([[1, 0, 0, 0]] * 3), ABC).label == ""


def _brute_force(logp, classes, k):
    """Every path's probability summed per collapsed text: the truth beam search approximates."""
    totals = {}
    for path in itertools.product(range(logp.shape[1]), repeat=logp.shape[0]):
        keep = [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]
        text = "".join(classes[c - 1] for c in keep)
        totals[text] = totals.get(text, 0.0) + float(np.exp(sum(logp[t, c] for t, c in enumerate(path))))
    return sorted(totals.items(), key=lambda x: -x[1])[:k]


def test_beam_search_finds_the_most_probable_texts():
    rng = np.random.default_rng(0)
    for _ in range(5):
        logp = log_softmax(rng.normal(size=(4, 4)) * 2)
        got = beam_search(logp, ABC, beam=64)[:3]
        want = _brute_force(logp, ABC, 3)
        assert [t for t, _ in got] == [t for t, _ in want]
        assert [p for _, p in got] == pytest.approx([p for _, p in want], rel=1e-6)


def test_beam_search_beats_greedy_where_paths_add_up():
    # Best path says blank-blank (""), but the two paths of "a" together are more probable.
    p = _probs([[0.4, 0.35, 0.25, 0], [0.4, 0.35, 0.25, 0]])
    assert greedy(p, ABC).label == ""
    assert beam_search(np.log(p + 1e-300), ABC)[0][0] == "a"


def test_charset_mask_never_returns_a_letter():
    logits = np.log(_probs([[1, 8, 0.5, 2], [6, 1, 1, 1], [1, 1, 7, 3]]))[None]
    allowed = [2]  # "1" only
    probs = TASK.probabilities(logits, allowed)
    assert np.allclose(probs.sum(-1), 1) and (probs[..., 1:3] == 0).all()
    answer = TASK.decode(probs, ABC, top_k=3, allowed=allowed)[0]
    assert answer.label == "11" or answer.label == "1"
    assert all(set(text) <= {"1"} for text, _ in answer.top_k)


def test_loss_is_torch_ctc_and_exact_counts_lines():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 4)
    targets = torch.tensor([[0, 1, PAD], [2, 2, 0]])
    collated = TASK.collate(targets)
    assert collated.flat.tolist() == [1, 2, 3, 3, 1] and collated.lengths.tolist() == [2, 3]
    want = F.ctc_loss(F.log_softmax(logits, 2).transpose(0, 1), collated.flat, torch.tensor([6, 6]),
                      collated.lengths, blank=0, reduction="mean", zero_infinity=True)
    assert torch.allclose(TASK.loss(logits, collated), want)
    perfect = torch.full((1, 5, 4), -9.0)
    for t, k in enumerate([1, 0, 2, 0, 0]):
        perfect[0, t, k] = 9.0
    assert TASK.score(perfect, TASK.collate(torch.tensor([[0, 1]])), 0.0).correct == 1
    assert TASK.validate(perfect, TASK.collate(torch.tensor([[1, 0]]))).correct == 0


def test_error_rates():
    def one_hot(text):
        rows = []
        for ch in text:
            rows += [[0, *[9 if c == ch else 0 for c in ABC]], [9, 0, 0, 0]]
        return _probs(np.asarray(rows) + 1e-3)

    probs = [one_hot("ab"), one_hot("a1")]
    m = TASK.metrics(["ab", "ab"], np.array(probs), ABC)
    assert m["exact"] == 0.5 and m["cer"] == pytest.approx(1 / 4) and m["wer"] == pytest.approx(1 / 2)


@pytest.mark.slow  # trains a (toy) model
def test_a_crnn_learns_a_toy_line_through_the_task():
    torch.manual_seed(0)
    model = build_model("crnn", **TASK.model_config(ABC), width=8, hidden=32)
    x = torch.zeros(4, 1, 32, 64)
    x[0, 0, 8:24, 8:16] = 1  # one block
    x[1, 0, 8:24, 8:16] = x[1, 0, 8:24, 40:48] = 1  # two blocks
    x[2, 0, 12:20, 20:40] = 1  # a bar
    targets = torch.tensor([[0, PAD], [0, 0], [1, PAD], [PAD, PAD]])  # "a", "aa", "b", ""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    collated = TASK.collate(targets)
    for _ in range(150):
        loss = TASK.loss(model(x), collated)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        probs = TASK.probabilities(model(x).numpy())
    assert [a.label for a in TASK.decode(probs, ABC, top_k=1)] == ["a", "aa", "b", ""]
    assert TASK.output_spec(4) == {"name": "logits", "shape": ["N", "T", 5]}
