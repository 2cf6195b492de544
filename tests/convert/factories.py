"""Model factories named by `module:factory` sources in the tests (importable as tests.convert.factories)."""
from __future__ import annotations

import urllib.request

import torch
from torch import nn


class TinySegmenter(nn.Module):
    """Conv-BN-ReLU and a 1x1 classifier; returns a dict like torchvision's segmenters."""

    def __init__(self, classes: int = 3, aux: bool = True, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.classifier = nn.Conv2d(8, classes, 1)
        self.aux = nn.Conv2d(8, 2, 1) if aux else None

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        out = {"out": self.classifier(h)}
        if self.aux is not None:
            out["aux"] = self.aux(h)
        return out


def tiny(classes: int = 3, aux: bool = True, stride: int = 1) -> nn.Module:
    return TinySegmenter(classes, aux, stride)


def downloading(weights_backbone: str | None = "IMAGENET1K_V1", classes: int = 3) -> nn.Module:
    """Fetches 'pretrained weights' unless weights_backbone=None, as torchvision factories do."""
    if weights_backbone is not None:
        urllib.request.urlopen("http://127.0.0.1:9/weights.pth", timeout=1)
    return TinySegmenter(classes, aux=False)


class TinySigmoid(nn.Module):
    """A one-channel map through a sigmoid (a salient-object or text-detector head)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


def tiny_sigmoid() -> nn.Module:
    return TinySigmoid()
