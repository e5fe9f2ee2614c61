"""scrawl.training.augment on made-up strokes: shapes and range kept, repeatable for a seeded generator,
no-op at zero strength, every transform doing something, and stroke changes going the right way."""

from dataclasses import fields

import pytest
import torch

from scrawl.training.augment import AugmentConfig, _stroke, augment_batch

OFF = AugmentConfig(**{f.name: 0.0 for f in fields(AugmentConfig)})  # every transform at strength 0


def strokes(n: int = 16, size: int = 28) -> torch.Tensor:
    """(n, 1, size, size) float images in [0, 1]: a 3 px vertical and a 2 px horizontal bar each, placed
    differently per image, with soft (grey) edges like MNIST's."""
    x = torch.zeros(n, 1, size, size)
    for i in range(n):
        col, row = 8 + i % 8, 6 + (i * 5) % 12
        x[i, 0, 5:23, col : col + 3] = 1.0
        x[i, 0, row : row + 2, 6:22] = 1.0
        x[i, 0, 5:23, col - 1] = 0.4
    return x


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shape_dtype_and_range_are_kept():
    x = strokes()
    for cfg in (AugmentConfig(), AugmentConfig(elastic=2.0, stroke=1.0, blur=1.0), OFF):
        out = augment_batch(x.clone(), cfg, gen())
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
        assert torch.isfinite(out).all()
        assert out.min() >= 0.0 and out.max() <= 1.0
    rect = torch.rand(4, 1, 20, 36, generator=gen(3))  # not square, not 28x28: still its own shape
    assert augment_batch(rect, AugmentConfig(elastic=1.0), gen()).shape == rect.shape


def test_a_seeded_generator_repeats_and_another_seed_differs():
    x, cfg = strokes(), AugmentConfig(elastic=1.5, stroke=0.5, blur=0.5)
    a = augment_batch(x.clone(), cfg, gen(7))
    b = augment_batch(x.clone(), cfg, gen(7))
    c = augment_batch(x.clone(), cfg, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_zero_strength_leaves_images_as_they_are():
    x = strokes()
    out = augment_batch(x.clone(), OFF, gen())
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("field, strength", [("rotate", 20.0), ("scale", 0.25), ("aspect", 0.25), ("shear", 0.4),
                                             ("translate", 3.0), ("elastic", 2.0), ("stroke", 1.0), ("blur", 1.0)])
def test_each_transform_changes_the_images(field, strength):
    x = strokes()
    cfg = AugmentConfig(**{**OFF.to_dict(), field: strength})
    out = augment_batch(x.clone(), cfg, gen())
    changed = (out - x).abs().flatten(1).amax(1) > 0.05  # per image
    # Geometric draws are uniform in [-strength, strength]: nearly every image moves; the probabilities
    # at 1 (stroke, blur) change every one.
    assert changed.float().mean() >= 0.75, (field, changed)


def test_translation_moves_ink_without_losing_it():
    x = strokes()
    out = augment_batch(x.clone(), AugmentConfig(**{**OFF.to_dict(), "translate": 2.0}), gen())
    mass_in, mass_out = x.sum(dim=(1, 2, 3)), out.sum(dim=(1, 2, 3))
    torch.testing.assert_close(mass_out, mass_in, rtol=0.02, atol=0)  # the bars stay inside the frame


def test_stroke_thickens_or_thins_each_chosen_image():
    x = strokes(64)
    out = _stroke(x, 1.0, gen())  # probability 1: every image is thickened or thinned, half each
    ink_in, ink_out = (x > 0).sum(dim=(1, 2, 3)), (out > 0).sum(dim=(1, 2, 3))
    thick, thin = ink_out > ink_in, out.sum(dim=(1, 2, 3)) < x.sum(dim=(1, 2, 3))
    assert bool((thick ^ thin).all())  # each image went exactly one way
    assert 16 <= int(thick.sum()) <= 48  # about half each
    # Thickening (grey dilation mixed half and half) never darkens a pixel; thinning (erosion) never brightens one.
    assert bool((out[thick] >= x[thick] - 1e-6).all()) and bool((out[thin] <= x[thin] + 1e-6).all())
    # A 3 px wide bar stays: thinning takes one pixel off its width, it does not erase the stroke.
    assert bool((out[thin] >= 0.99).flatten(1).any(1).all())


def test_stroke_at_probability_zero_is_the_identity():
    x = strokes()
    assert torch.equal(_stroke(x, 0.0, gen()), x)
    assert torch.equal(augment_batch(x.clone(), AugmentConfig(**{**OFF.to_dict(), "stroke": 0.0}), gen()),
                       augment_batch(x.clone(), OFF, gen()))


def test_blur_keeps_each_image_at_full_brightness():
    x = strokes()
    out = augment_batch(x.clone(), AugmentConfig(**{**OFF.to_dict(), "blur": 1.0}), gen())
    torch.testing.assert_close(out.amax(dim=(1, 2, 3)), torch.ones(len(x)), atol=1e-5, rtol=0)
    assert bool(((out > 0).sum(dim=(1, 2, 3)) > (x > 0).sum(dim=(1, 2, 3))).all())  # the edges spread
