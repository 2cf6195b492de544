"""Model factories named by `module:factory` sources in the CLI tests (tests.cli.factories:NAME)."""
from __future__ import annotations

import torch
from torch import nn


class Drifting(nn.Module):
    """A 1x1 conv whose `reparameterize` changes the function (doubles its weights): the reparam
    stage's check must catch it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def reparameterize(self):
        with torch.no_grad():
            self.conv.weight.mul_(2.0)

    def forward(self, x):
        return self.conv(x)


def drifting() -> nn.Module:
    """A segmenter (3 classes at the input's resolution) whose reparameterization breaks parity."""
    torch.manual_seed(0)
    return nn.Sequential(Drifting())
