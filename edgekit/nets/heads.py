"""Segmentation heads: a semantic FPN (Kirillov et al., 2019) and a linear (1x1) head."""
from __future__ import annotations

__all__ = ["ConvBnAct", "FpnHead", "LinearHead"]

import torch
from torch import nn
from torch.nn import functional as F


class ConvBnAct(nn.Sequential):
    """3x3 (or kxk) convolution, BatchNorm and ReLU: the unit edgekit's BN fold removes."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class FpnHead(nn.Module):
    """Semantic FPN: lateral 1x1 convs, a top-down path, and per-level upsampling to stride 4.

    Args:
        in_channels: channels of each backbone level, finest first.
        reductions: stride of each level, finest first.
        channels: width of the FPN.
        num_classes: output channels (logits).
    """

    def __init__(self, in_channels: list[int], reductions: list[int], channels: int, num_classes: int):
        super().__init__()
        self.base = reductions[0]
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(ConvBnAct(channels, channels) for _ in in_channels)
        self.up_steps = [max(0, (r // self.base).bit_length() - 1) for r in reductions]
        self.branches = nn.ModuleList(
            nn.Sequential(*[ConvBnAct(channels, channels) for _ in range(max(1, n))]) for n in self.up_steps
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        laterals = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], scale_factor=2.0, mode="nearest")
        out = None
        for lat, smooth, branch, steps in zip(laterals, self.smooth, self.branches, self.up_steps):
            x = smooth(lat)
            for block in branch:
                x = block(x)
                if steps > 0:
                    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
                    steps -= 1
            out = x if out is None else out + x
        return self.classifier(out)


class LinearHead(nn.Module):
    """A linear probe on the coarsest feature map: BatchNorm then a 1x1 conv (DINO-style)."""

    def __init__(self, in_channels: list[int], reductions: list[int], num_classes: int, **_: object):
        super().__init__()
        self.base = reductions[-1]
        self.norm = nn.BatchNorm2d(in_channels[-1])
        self.classifier = nn.Conv2d(in_channels[-1], num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.norm(feats[-1]))
