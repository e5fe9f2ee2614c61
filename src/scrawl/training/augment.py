"""Batch augmentation with torch ops: random affine, elastic warp and stroke-width changes.

Everything works on a whole (B, 1, H, W) float batch at once (one affine_grid + grid_sample call),
so augmentation costs a few percent of a training step instead of a Python loop per image.
The aim is robustness to how people really write (slant, size, position, pen width), not just
MNIST's own writers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    rotate: float = 12.0  # max rotation, degrees (people tilt digits ~±10°)
    scale: float = 0.12  # isotropic scale in [1-s, 1+s]
    aspect: float = 0.10  # extra x/y stretch in [1-a, 1+a] (narrow and wide writing)
    shear: float = 0.25  # max horizontal shear (tan of the slant angle, ~±14°)
    translate: float = 2.5  # max shift in pixels (MNIST centres by mass, users don't)
    elastic: float = 0.0  # elastic warp strength in pixels (Simard et al. 2003); 0 = off
    stroke: float = 0.3  # probability of thickening or thinning the pen (half each)
    blur: float = 0.1  # probability of a light blur (scans, photos, EMNIST's Gaussian)

    def to_dict(self) -> dict:
        return asdict(self)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly transform a batch (B, 1, H, W) of float images in [0, 1]; returns the same shape.
    With every geometric setting 0 (line models: their renders already vary the geometry), only the
    pen and the blur change."""
    b, dev = x.shape[0], x.device

    def rand(*shape):  # uniform in [-1, 1)
        return torch.rand(*shape, generator=generator, device=dev) * 2 - 1

    x = _stroke(x, cfg.stroke, generator)
    if cfg.rotate or cfg.scale or cfg.aspect or cfg.shear or cfg.translate or cfg.elastic:
        x = _warp(x, cfg, rand)
    if cfg.blur > 0:
        blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1)), 3, stride=1) * 0.5 + x * 0.5
        pick = (torch.rand(b, 1, 1, 1, generator=generator, device=dev) < cfg.blur).to(x.dtype)
        x = pick * blurred + (1 - pick) * x
        x = x / x.amax(dim=(2, 3), keepdim=True).clamp_min(1e-3) * pick + x * (1 - pick)
    return x.clamp_(0, 1)


def _warp(x: torch.Tensor, cfg: AugmentConfig, rand) -> torch.Tensor:
    """The random affine (and elastic) part: one affine_grid + grid_sample for the whole batch."""
    b, _, h, w = x.shape
    dev = x.device
    angle = rand(b) * math.radians(cfg.rotate)
    scale = 1 + rand(b) * cfg.scale
    aspect = 1 + rand(b) * cfg.aspect
    shear = rand(b) * cfg.shear
    sx, sy = scale * aspect, scale / aspect
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output->input mapping for grid_sample (inverse of the forward transform, which only matters for
    # the sign conventions of random parameters: both directions are equally likely).
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = (cos + shear * sin) / sx
    theta[:, 0, 1] = (-sin + shear * cos) / sx
    theta[:, 1, 0] = sin / sy
    theta[:, 1, 1] = cos / sy
    theta[:, 0, 2] = rand(b) * cfg.translate * 2 / w  # pixels -> normalised [-1, 1] coordinates
    theta[:, 1, 2] = rand(b) * cfg.translate * 2 / h
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)  # (B, H, W, 2)
    if cfg.elastic > 0:
        # Coarse random displacements, smoothly upsampled: a cheap stand-in for Gaussian-filtered noise.
        coarse = rand(b, 2, 4, 4) * (cfg.elastic * 2 / w)
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)  # (B, 2, H, W)
        grid = grid + field.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _stroke(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Thicken (grey dilation) or thin (grey erosion) the pen of a random subset of the batch."""
    if p <= 0:
        return x
    b = x.shape[0]
    r = torch.rand(b, 1, 1, 1, generator=generator, device=x.device)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    # A 2x2 erosion thins less than 3x3: MNIST strokes are only 2-3 px wide.
    thin = -F.max_pool2d(F.pad(-x, (0, 1, 0, 1), value=-1.0), 2, stride=1)
    thick_w = (r < p / 2).to(x.dtype)
    thin_w = ((r >= p / 2) & (r < p)).to(x.dtype)
    return thick_w * (0.5 * x + 0.5 * thick) + thin_w * thin + (1 - thick_w - thin_w) * x
