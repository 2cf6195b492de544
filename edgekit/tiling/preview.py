"""A downsampled copy of the image and the class mask, saved as a colour overlay PNG.

Pixels are shown in the artifact's declared units (``scale``), so a 16-bit scene looks like its
8-bit copy.
"""
from __future__ import annotations

__all__ = ["Preview", "PALETTE"]

import math
from pathlib import Path

import numpy as np

from edgekit.tiling.geometry import Window

PALETTE = np.array([
    [31, 119, 180], [44, 160, 44], [255, 127, 14], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
], np.uint8)


class Preview:
    """A downsampled image and mask, filled as tiles are read and rows finished; saved as an overlay."""

    def __init__(self, height: int, width: int, scale: float = 255.0, max_side: int = 1024):
        self.step = max(1, math.ceil(max(height, width) / max_side))
        shape = (math.ceil(height / self.step), math.ceil(width / self.step))
        self.image = np.zeros((*shape, 3), np.uint8)
        self.mask = np.full(shape, 255, np.uint8)
        self.full = float(scale)

    @classmethod
    def for_source(cls, source, scale: float) -> "Preview":
        return cls(source.shape[0], source.shape[1], scale)

    def _display(self, raw: np.ndarray) -> np.ndarray:
        rgb = raw[..., [0, 0, 0]] if raw.shape[-1] < 3 else raw[..., :3]
        scaled = np.nan_to_num(rgb.astype(np.float32) * (255.0 / self.full))
        return np.clip(scaled, 0, 255).astype(np.uint8)

    def _first(self, start: int) -> int:
        return -start % self.step  # offset of the first sampled pixel at or after ``start``

    def add_pixels(self, window: Window, raw: np.ndarray) -> None:
        """Keep the sampled pixels of a window just read."""
        r0, c0 = self._first(window.row), self._first(window.col)
        part = self._display(raw[r0::self.step, c0::self.step])
        pr, pc = (window.row + r0) // self.step, (window.col + c0) // self.step
        self.image[pr:pr + part.shape[0], pc:pc + part.shape[1]] = part

    def add_mask(self, top: int, mask: np.ndarray) -> None:
        """Keep the sampled pixels of finished mask rows starting at image row ``top``."""
        r0 = self._first(top)
        part = mask[r0::self.step, ::self.step]
        pr = (top + r0) // self.step
        self.mask[pr:pr + part.shape[0]] = part

    def save(self, path: Path, alpha: float = 0.45) -> None:
        """Write the overlay PNG: classes in colour over the image, nodata left bare."""
        from PIL import Image

        known = self.mask != 255
        colour = PALETTE[self.mask % len(PALETTE)].astype(np.float32)
        out = self.image.astype(np.float32)
        out[known] = (1 - alpha) * out[known] + alpha * colour[known]
        Image.fromarray(out.astype(np.uint8)).save(path, format="PNG")
