"""Tiny models for the compress tests, built in place with fixed seeds (no downloads)."""
from __future__ import annotations

import torch
from torch import nn


class TinyCnn(nn.Module):
    """3 -> 16 -> 16 -> 3 channels, 3x3/1x1 convolutions: a segmenter of the cnn family."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 1)
        self.classifier = nn.Conv2d(16, 3, 1)

    def forward(self, x):
        return self.classifier(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


def tiny_segmenter(backbone: str = "test_convnext", channels: int = 16):
    from edgekit.nets.segmenter import create_segmenter

    torch.manual_seed(0)
    return create_segmenter(backbone, "fpn", num_classes=3, channels=channels).eval()


def tiny_vit():
    import timm

    torch.manual_seed(0)
    return timm.create_model("test_vit", pretrained=False).eval()


def tiny_eva_segmenter(out_indices=(1, -1), depth: int = 6):
    """A DINOv3-layout (timm Eva: RoPE, registers, ModuleList of blocks) segmenter, 64-pixel input."""
    import timm

    from edgekit.nets.heads import LinearHead
    from edgekit.nets.segmenter import Segmenter

    torch.manual_seed(0)
    body = timm.create_model("vit_small_patch16_dinov3", pretrained=False, features_only=True, out_indices=out_indices,
                             depth=depth, embed_dim=64, num_heads=2, img_size=64)
    info = body.feature_info
    return Segmenter(body, LinearHead(info.channels(), info.reduction(), channels=16, num_classes=3)).eval()
