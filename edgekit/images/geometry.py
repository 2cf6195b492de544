"""Tile geometry as pure functions: where tiles go, and how much each tile's pixels weigh.

No images here. Tiles are spread so that the last one ends at the image border and every tile
has the model's full size (fixed-shape engines); an image smaller than a tile gets one window covering it, and
the executor pads that window (reflect) and crops the result back.

Blending weights are separable, built per axis. On an edge a tile shares with a neighbour they
are zero over the outer quarter of the overlap, rise over its middle half (``linear``: a ramp,
``gaussian``: a Gaussian CDF, ``crop``: a step at the middle) and are one beyond; on the image's
own border they stay one. Two neighbours' weights sum to one across their overlap, so for a fully
convolutional model whose receptive-field radius is at most a quarter of the overlap (half of
it for ``crop``) the tiled result equals the whole-image result.
"""
from __future__ import annotations

__all__ = ["Window", "TileLayout", "BLENDS", "axis_starts", "axis_weights", "tile_grid", "edge_ramp"]

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from edgekit.errors import ConfigError

BLENDS = ("gaussian", "linear", "crop")


@dataclass(frozen=True, order=True)
class Window:
    """A rectangle of the image in pixels: top row, left column, height, width."""

    row: int
    col: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        return self.row + self.height

    @property
    def right(self) -> int:
        return self.col + self.width


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles along one axis: as few tiles as steps of at most ``tile - overlap``
    allow, spread evenly so that the last one ends at the border.

    Every tile keeps its full size, as with shifting only the last tile back inside (SAHI), but
    neighbours share about the same number of rows everywhere, instead of one pair sharing up to a
    whole tile: that keeps the stitcher's float rows small and the same all down the image.

    Args:
        length: image size along the axis.
        tile: tile size along the axis.
        overlap: pixels two neighbouring tiles share at least.
    """
    if tile <= 0 or length <= 0:
        raise ConfigError(f"tile ({tile}) and image size ({length}) must be positive")
    if not 0 <= overlap < tile:
        raise ConfigError(f"overlap must be in [0, {tile - 1}] for a {tile}-pixel tile, got {overlap}")
    if length <= tile:
        return [0]
    gaps = -(-(length - tile) // (tile - overlap))  # fewest steps of at most tile - overlap
    return [round(i * (length - tile) / gaps) for i in range(gaps + 1)]


def edge_ramp(shared: int, blend: str) -> np.ndarray:
    """Weights of the ``shared`` pixels a tile shares with its neighbour, from the shared edge inwards.

    The neighbour's weights over the same pixels are this ramp reversed, and the two sum to one.
    """
    if blend not in BLENDS:
        raise ConfigError(f"unknown blend {blend!r}; choose one of {', '.join(BLENDS)}")
    d = np.arange(shared, dtype=np.float64) + 0.5  # pixel centres from the edge
    if blend == "crop" or shared < 4:
        ramp = (d > shared / 2).astype(np.float64)
        if shared % 2:  # odd overlap: the middle pixel is split evenly
            ramp[shared // 2] = 0.5
        return ramp.astype(np.float32)
    margin = shared // 4
    span = shared - 2 * margin
    t = (d - margin) / span  # 0..1 over the blended middle
    if blend == "linear":
        ramp = np.clip(t, 0.0, 1.0)
    else:
        z = (t - 0.5) * 6.0  # +-3 sigma over the span
        ramp = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in z])
        ramp[t <= 0] = 0.0
        ramp[t >= 1] = 1.0
    return ramp.astype(np.float32)


def axis_weights(starts: list[int], tile: int, blend: str) -> dict[int, np.ndarray]:
    """1-D blending weights along one axis, by tile start, for tiles starting at ``starts`` (sorted)."""
    out = {}
    for i, s in enumerate(starts):
        w = np.ones(tile, np.float32)
        if i > 0:
            shared = starts[i - 1] + tile - s
            w[:shared] *= edge_ramp(shared, blend)
        if i + 1 < len(starts):
            shared = s + tile - starts[i + 1]
            w[tile - shared:] *= edge_ramp(shared, blend)[::-1]
        out[s] = w
    return out


@dataclass(frozen=True)
class TileLayout:
    """Where the tiles of one image go, and their weights, without holding one array per tile.

    Attributes:
        height / width: image size.
        tile_h / tile_w: the model's tile size.
        overlap: minimum pixels shared by neighbouring tiles.
        blend: one of ``gaussian``, ``linear``, ``crop``.
    """

    height: int
    width: int
    tile_h: int
    tile_w: int
    overlap: int
    blend: str = "gaussian"

    @property
    def rows(self) -> list[int]:
        return axis_starts(self.height, self.tile_h, self.overlap)

    @property
    def cols(self) -> list[int]:
        return axis_starts(self.width, self.tile_w, self.overlap)

    @property
    def window_shape(self) -> tuple[int, int]:
        """Size of every window: the tile, clipped to images smaller than a tile."""
        return min(self.tile_h, self.height), min(self.tile_w, self.width)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def windows(self) -> Iterator[Window]:
        """Every window, row-major, lazily (a huge image has hundreds of thousands)."""
        h, w = self.window_shape
        cols = self.cols
        for r in self.rows:
            for c in cols:
                yield Window(r, c, h, w)

    def weigher(self) -> Callable[[Window], np.ndarray]:
        """A function giving a window's (h, w) float32 blending weights (outer product of the axes)."""
        h, w = self.window_shape
        wr = axis_weights(self.rows, h, self.blend)
        wc = axis_weights(self.cols, w, self.blend)
        return lambda win: np.outer(wr[win.row], wc[win.col])


def tile_grid(height: int, width: int, tile_h: int, tile_w: int, overlap: int) -> list[Window]:
    """Windows covering a ``height`` x ``width`` image, row-major; clipped to images smaller than a tile."""
    return list(TileLayout(height, width, tile_h, tile_w, overlap).windows())
