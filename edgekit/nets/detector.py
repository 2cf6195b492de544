"""An anchor-free detector whose raw output is the YOLOv8 layout ``(B, 4 + nc, N)``.

A timm feature backbone, a small top-down FPN, and one shared head per level that predicts the
distances from each grid point to the box sides (left, top, right, bottom, in strides) and a
class logit. ``forward`` returns what YOLOv8/YOLO11 exports: centre x, centre y, width, height in
input pixels, then per-class sigmoid scores, no objectness. So edgekit's decoder, SAHI and every
other tool that reads YOLOv8 ONNX read this network's ONNX too.
"""
from __future__ import annotations

__all__ = ["Detector", "DetectHead", "create_detector"]

import timm
import torch
from torch import nn
from torch.nn import functional as F

from edgekit.nets.heads import ConvBnAct


class DetectHead(nn.Module):
    """Top-down FPN over the backbone levels, then a shared box/class head on every level.

    Args:
        in_channels: channels of each backbone level, finest first.
        reductions: stride of each level, finest first.
        channels: width of the FPN and the head.
        num_classes: number of object classes.
    """

    def __init__(self, in_channels: list[int], reductions: list[int], channels: int, num_classes: int):
        super().__init__()
        self.strides = [int(r) for r in reductions]
        self.num_classes = num_classes
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.stem = nn.Sequential(ConvBnAct(channels, channels), ConvBnAct(channels, channels))
        self.box = nn.Conv2d(channels, 4, 1)
        self.cls = nn.Conv2d(channels, num_classes, 1)
        nn.init.constant_(self.cls.bias, -4.6)  # prior 0.01: the focal-loss start
        nn.init.constant_(self.box.bias, 0.5)

    def levels(self, feats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        """Per level: side distances in pixels (B, 4, H, W), class logits (B, nc, H, W), stride."""
        laterals = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], scale_factor=2.0, mode="nearest")
        out = []
        for lat, stride in zip(laterals, self.strides):
            x = self.stem(lat)
            out.append((F.softplus(self.box(x)) * float(stride), self.cls(x), stride))
        return out


def _grid(h: int, w: int, stride: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ys = (torch.arange(h, dtype=like.dtype, device=like.device) + 0.5) * stride
    xs = (torch.arange(w, dtype=like.dtype, device=like.device) + 0.5) * stride
    return xs.view(1, w).expand(h, w).reshape(-1), ys.view(h, 1).expand(h, w).reshape(-1)


class Detector(nn.Module):
    """Backbone -> DetectHead -> YOLOv8 raw output (B, 4 + nc, N)."""

    def __init__(self, backbone: nn.Module, head: DetectHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def dense(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Boxes x1y1x2y2 (B, N, 4), class logits (B, N, nc), grid points (N, 2), strides (N,)."""
        boxes, logits, points, strides = [], [], [], []
        for dist, cls, stride in self.head.levels(self.backbone(x)):
            b, _, h, w = dist.shape
            px, py = _grid(h, w, stride, dist)
            d = dist.flatten(2)
            boxes.append(torch.stack((px - d[:, 0], py - d[:, 1], px + d[:, 2], py + d[:, 3]), dim=2))
            logits.append(cls.flatten(2).transpose(1, 2))
            points.append(torch.stack((px, py), dim=1))
            strides.append(torch.full((h * w,), float(stride), dtype=dist.dtype, device=dist.device))
        return torch.cat(boxes, 1), torch.cat(logits, 1), torch.cat(points, 0), torch.cat(strides, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        boxes, logits, _, _ = self.dense(x)
        cxcy = (boxes[..., :2] + boxes[..., 2:]) * 0.5
        wh = boxes[..., 2:] - boxes[..., :2]
        return torch.cat((cxcy, wh, logits.sigmoid()), dim=2).transpose(1, 2)


def create_detector(
    backbone: str,
    num_classes: int,
    channels: int = 64,
    out_indices: tuple[int, ...] | None = (2, 3, 4),
    deploy: bool = False,
) -> Detector:
    """Build a detector from a timm backbone name, never loading pretrained weights.

    ``deploy`` builds the backbone in its reparameterized (single-branch) form, which trains
    several times faster on a CPU; the weights then fit that form only.
    """
    kwargs: dict = {"pretrained": False, "features_only": True}
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    body = timm.create_model(backbone, **kwargs)
    info = body.feature_info
    if deploy:
        from timm.utils.model import reparameterize_model

        body = reparameterize_model(body)
    return Detector(body, DetectHead(info.channels(), info.reduction(), channels, num_classes))
