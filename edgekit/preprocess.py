"""How raw pixels become a model's input: scale, channel order, mean and std. NumPy only."""
from __future__ import annotations

__all__ = ["Preprocess"]

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Preprocess:
    """Per-channel normalisation applied to every image before the model.

    ``mean`` and ``std`` are in units of ``scale`` (pixel / scale), the timm convention.
    ``channel_order`` is the order the model expects (``RGB`` or ``BGR``).
    """

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"
    scale: float = 255.0

    @property
    def channels(self) -> int:
        return len(self.mean)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W, C) or (N, H, W, C) pixels in RGB order -> float32 (N, C, H, W) model input."""
        x = np.asarray(pixels, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if self.channel_order.upper() == "BGR":
            x = x[..., ::-1]
        mean = np.asarray(self.mean, np.float32) * self.scale
        inv = 1.0 / (np.asarray(self.std, np.float32) * self.scale)
        return np.ascontiguousarray(((x - mean) * inv).transpose(0, 3, 1, 2))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocess":
        return cls(
            mean=tuple(float(v) for v in data.get("mean", cls.mean)),
            std=tuple(float(v) for v in data.get("std", cls.std)),
            channel_order=str(data.get("channel_order", "RGB")),
            scale=float(data.get("scale", 255.0)),
        )
