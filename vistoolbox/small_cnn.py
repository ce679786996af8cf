"""``smallcnn``: the package's own small classifier (three conv layers and a linear layer), the model
``vis train`` trains by default and the toolbox's first offline model with real class logits.

Layers (input ``[N, 3, 28, 28]``, RGB 0–1 normalised; grey images are given as three equal channels)::

    conv1  Conv2d(3, 16, 3, padding=1)   → 16×28×28   relu1   pool1 MaxPool2d(2) → 16×14×14
    conv2  Conv2d(16, 32, 3, padding=1)  → 32×14×14   relu2   pool2 MaxPool2d(2) → 32×7×7
    conv3  Conv2d(32, 64, 3, padding=1)  → 64×7×7     relu3
    gap    AdaptiveAvgPool2d(4)          → 64×4×4     (any input size ≥ 4 works)
    fc     Linear(1024, classes)         → logits
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SMALL_CNN", "SMALL_CNN_MEAN", "SMALL_CNN_STD", "SmallCNN"]

SMALL_CNN = "smallcnn"
#: Fashion-MNIST's pixel mean and standard deviation (0–1 scale), the model's normalisation.
SMALL_CNN_MEAN = (0.286, 0.286, 0.286)
SMALL_CNN_STD = (0.353, 0.353, 0.353)


class SmallCNN(nn.Module):
    """conv1..conv3 + fc, every layer a named attribute (``--layer conv2`` works everywhere)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(64 * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        return self.fc(torch.flatten(self.gap(x), 1))
