"""Bring a whole image, and its label mask alike, to a model's input size.

``crop`` (default, for tiled segmentation): keep the pixel scale; centre-crop an image larger than
the input, enlarge (bilinear) only an image smaller than it, just enough to cover it.
``resize`` (classification): scale the image so its shorter side covers the input, then
centre-crop, the timm evaluation convention. Masks take the same scale and crop, nearest-neighbour.
"""
from __future__ import annotations

__all__ = ["FITS", "fit_image", "fit_mask"]

import numpy as np

from edgekit.errors import ConfigError

FITS = ("crop", "resize")


def _plan(shape: tuple[int, int], size: tuple[int, int], fit: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """(scaled height, width) and the crop's (top, left) for an image of ``shape``."""
    if fit not in FITS:
        raise ConfigError(f"unknown fit {fit!r}; choose one of: {', '.join(FITS)}")
    h, w = size
    ih, iw = shape
    cover = max(h / ih, w / iw)
    scale = cover if fit == "resize" or cover > 1 else 1.0
    scaled = (max(h, round(ih * scale)), max(w, round(iw * scale))) if scale != 1.0 else (ih, iw)
    return scaled, ((scaled[0] - h) // 2, (scaled[1] - w) // 2)


def fit_image(image: np.ndarray, size: tuple[int, int], fit: str = "crop") -> np.ndarray:
    """(H, W, C) pixels -> (size, C): scaled (bilinear, float32) when ``fit`` says so, then centre-cropped."""
    (sh, sw), (top, left) = _plan(image.shape[:2], size, fit)
    if (sh, sw) != image.shape[:2]:
        image = _resize(image, (sh, sw))
    return image[top : top + size[0], left : left + size[1]]


def fit_mask(mask: np.ndarray, size: tuple[int, int], fit: str = "crop") -> np.ndarray:
    """(H, W) labels cut like :func:`fit_image` cuts their image (nearest-neighbour scaling)."""
    (sh, sw), (top, left) = _plan(mask.shape[:2], size, fit)
    if (sh, sw) != mask.shape[:2]:
        rows = np.minimum((np.arange(sh) * mask.shape[0] / sh).astype(np.int64), mask.shape[0] - 1)
        cols = np.minimum((np.arange(sw) * mask.shape[1] / sw).astype(np.int64), mask.shape[1] - 1)
        mask = mask[rows][:, cols]
    return mask[top : top + size[0], left : left + size[1]]


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (H, W, C) pixels, channel by channel in float32 (any dtype)."""
    from PIL import Image

    planes = [
        np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize((size[1], size[0]), Image.BILINEAR))
        for c in range(image.shape[-1])
    ]
    return np.stack(planes, axis=-1)
