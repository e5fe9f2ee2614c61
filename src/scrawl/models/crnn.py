"""A line recognizer's network: convolutions read the ink, a bidirectional LSTM reads along the line
(Shi, Bai and Yao 2015, "An end-to-end trainable neural network for image-based sequence recognition",
the CRNN), and a linear layer gives CTC logits at every fourth column.

Input (B, 1, height, W) float in [0, 1], ink bright, any width W >= 4; output logits (B, W // 4,
num_classes) where num_classes counts CTC's blank.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CRNN(nn.Module):
    def __init__(self, num_classes: int, height: int = 32, width: int = 32, hidden: int = 128, layers: int = 1,
                 dropout: float = 0.1):
        super().__init__()
        if height % 8:
            raise ValueError(f"CRNN height must be a multiple of 8, got {height}")
        w = width
        self.features = nn.Sequential(
            *_conv(1, w), nn.MaxPool2d(2),  # (B, w, H/2, W/2)
            *_conv(w, 2 * w), nn.MaxPool2d(2),  # (B, 2w, H/4, W/4)
            *_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w), nn.MaxPool2d((2, 1)),  # (B, 4w, H/8, W/4)
            *_conv(4 * w, 6 * w),  # (B, 6w, H/8, W/4)
        )
        self.squash = nn.Linear(6 * w * (height // 8), 2 * hidden)  # each column's features -> one vector
        self.rnn = nn.LSTM(2 * hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                           dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (B, 6w, H/8, T)
        f = f.permute(0, 3, 1, 2).flatten(2)  # (B, T, 6w * H/8)
        seq, _ = self.rnn(torch.relu(self.squash(f)))  # (B, T, 2 * hidden)
        return self.head(seq)  # (B, T, num_classes)


register("crnn", "a line recognizer: CNN + bidirectional LSTM, CTC logits per 4 px of width", task="ctc")(CRNN)
