"""Recipes in stages (scrawl.training.stages): an init of "recipe:NAME" trains that recipe first into
OUT/NAME, starts the second run from its best.pt, skips a finished first stage and refuses to restart a
stopped one without --resume; a chain of three trains each stage in the folder of the one after it."""

from dataclasses import replace

import pytest
import torch

import scrawl.training.config as config
from scrawl.errors import ScrawlError
from scrawl.labels import NOT_A_CHARACTER
from scrawl.runtime.checkpoint import load_checkpoint
from scrawl.training import RECIPES, train

pytestmark = pytest.mark.realdata

FIRST = replace(RECIPES["default"], model="fastnet", model_config={"width": 8}, epochs=1, batch_size=64, limit=320,
                precision="fp32")
SECOND = replace(FIRST, junk=0.1, lr=1e-3, init="recipe:tiny-first")


@pytest.fixture
def tiny_recipes(monkeypatch):
    monkeypatch.setitem(config.RECIPES, "tiny-first", FIRST)


def test_the_first_stage_is_trained_then_the_second_starts_from_it(real_data_dir, tmp_path, tiny_recipes):
    result = train(SECOND, tmp_path, data_dir=real_data_dir, progress=False)
    first = tmp_path / "tiny-first" / "best.pt"
    assert first.exists()
    card = load_checkpoint(result["last"]).meta
    assert card["train_config"]["init"] == str(first)
    assert card["classes"][-1] == NOT_A_CHARACTER and load_checkpoint(first).meta["classes"][-1] == "9"

    # Finished: another run given this first stage trains only its second stage.
    before = first.stat().st_mtime_ns
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "tiny-first").symlink_to(tmp_path / "tiny-first", target_is_directory=True)
    again = train(SECOND, tmp_path / "again", data_dir=real_data_dir, progress=False)
    assert first.stat().st_mtime_ns == before
    a, b = load_checkpoint(again["last"]).state_dict, load_checkpoint(result["last"]).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same start, the same seed: the same weights


def test_a_stopped_first_stage_needs_resume(real_data_dir, tmp_path, tiny_recipes, monkeypatch):
    monkeypatch.setitem(config.RECIPES, "tiny-first", replace(FIRST, epochs=2))
    train(replace(FIRST, epochs=1), tmp_path / "tiny-first", data_dir=real_data_dir, progress=False)  # 1 of 2
    with pytest.raises(ScrawlError, match="stopped part-way; use --resume"):
        train(SECOND, tmp_path, data_dir=real_data_dir, progress=False)


def test_a_chain_of_three_stages_trains_each_in_turn(real_data_dir, tmp_path, tiny_recipes, monkeypatch):
    monkeypatch.setitem(config.RECIPES, "tiny-second", SECOND)
    third = replace(SECOND, lr=5e-4, init="recipe:tiny-second")
    result = train(third, tmp_path, data_dir=real_data_dir, progress=False)
    second, first = tmp_path / "tiny-second" / "best.pt", tmp_path / "tiny-second" / "tiny-first" / "best.pt"
    assert first.exists() and second.exists()
    assert load_checkpoint(second).meta["train_config"]["init"] == str(first)
    assert load_checkpoint(result["last"]).meta["train_config"]["init"] == str(second)


def test_an_unknown_first_stage_is_named(tmp_path):
    with pytest.raises(ScrawlError, match="init recipe:nope: no such recipe"):
        train(replace(FIRST, init="recipe:nope"), tmp_path, progress=False)
