"""A segmentation network: a timm feature backbone and a head, logits at input resolution."""
from __future__ import annotations

__all__ = ["Segmenter", "create_segmenter"]

import timm
import torch
from torch import nn
from torch.nn import functional as F

from edgekit.nets.heads import FpnHead, LinearHead

HEADS = {"fpn": FpnHead, "linear": LinearHead}


class Segmenter(nn.Module):
    """Backbone features -> head -> bilinear upsampling back to the input size."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.backbone(x))
        return F.interpolate(logits, scale_factor=float(self.head.base), mode="bilinear", align_corners=False)


def create_segmenter(
    backbone: str,
    head: str,
    num_classes: int,
    channels: int = 64,
    out_indices: tuple[int, ...] | None = None,
    img_size: int | None = None,
) -> Segmenter:
    """Build a segmenter from a timm backbone name, never loading pretrained weights."""
    kwargs: dict = {"pretrained": False, "features_only": True}
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    if img_size is not None:
        kwargs["img_size"] = img_size
    body = timm.create_model(backbone, **kwargs)
    info = body.feature_info
    head_cls = HEADS[head]
    return Segmenter(body, head_cls(info.channels(), info.reduction(), channels=channels, num_classes=num_classes))
