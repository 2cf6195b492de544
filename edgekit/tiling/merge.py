"""Stitching: blend tile outputs in a band of rows, release rows as soon as no tile can touch them.

Tiles arrive row-major. The band holds only the rows of the current tile row (tile height x
image width x classes, float32) and their weight sum; when the next tile row starts, the rows
above it are final: they are normalised, turned into a class mask (and probabilities) and handed
on. Memory depends on tile height, classes and image width, never on image height.
Blending acts on probabilities (softmax of the logits, sigmoid for one channel), never class ids.
"""
from __future__ import annotations

__all__ = ["RowBand", "FinishedRows", "Stitcher", "NODATA_CLASS", "probabilities_from_logits"]

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgekit.tiling.geometry import Window

NODATA_CLASS = 255  # class mask value where no pixel was valid (declared nodata, or all-nodata tiles)
FLOOR = 1e-6  # weight every valid pixel keeps, so a pixel next to a skipped tile still gets a value


def probabilities_from_logits(logits: np.ndarray) -> np.ndarray:
    """(N, C, h, w) logits -> probabilities: softmax over C, or sigmoid when C is 1."""
    x = logits.astype(np.float32, copy=False)
    if x.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-x))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


@dataclass(frozen=True)
class FinishedRows:
    """Rows ``top .. top + n`` of the result: class ids (n, W) uint8, probabilities (n, W, C) float16 or None."""

    top: int
    mask: np.ndarray
    probabilities: np.ndarray | None


class RowBand:
    """Weighted sums of tile outputs for ``rows`` image rows starting at ``top``.

    Args:
        channels: values per pixel (classes).
        rows: band height (the tile height).
        width: image width.
    """

    def __init__(self, channels: int, rows: int, width: int):
        self.top = 0
        self.rows = rows
        self.acc = np.zeros((channels, rows, width), np.float32)
        self.weight = np.zeros((rows, width), np.float32)

    @property
    def nbytes(self) -> int:
        return self.acc.nbytes + self.weight.nbytes

    def add(self, window: Window, values: np.ndarray, weight: np.ndarray) -> None:
        """Add ``values`` (C, h, w) times ``weight`` (h, w) at ``window``, which must lie in the band."""
        r = window.row - self.top
        if r < 0 or r + window.height > self.rows:
            raise ValueError(f"window at row {window.row} is outside the band at {self.top}..{self.top + self.rows}")
        rows, cols = slice(r, r + window.height), slice(window.col, window.right)
        self.acc[:, rows, cols] += values * weight
        self.weight[rows, cols] += weight

    def finished(self, upto: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of the sums (C, n, W) and weights (n, W) of rows ``top .. upto``; valid until :meth:`drop`."""
        n = upto - self.top
        if not 0 <= n <= self.rows:
            raise ValueError(f"cannot release rows {self.top}..{upto} from a {self.rows}-row band")
        return self.acc[:, :n], self.weight[:n]

    def drop(self, upto: int) -> None:
        """Forget rows ``top .. upto``: the band moves down, in place."""
        n = upto - self.top
        self.acc[:, : self.rows - n] = self.acc[:, n:]
        self.acc[:, self.rows - n:] = 0.0
        self.weight[: self.rows - n] = self.weight[n:]
        self.weight[self.rows - n:] = 0.0
        self.top = upto


class Stitcher:
    """Feeds tiles into a :class:`RowBand` and calls ``emit`` with each block of finished rows.

    Args:
        height / width: image size.
        channels: classes (the model's output channels).
        band_rows: tile height.
        weigher: window -> (h, w) blending weights.
        emit: receives :class:`FinishedRows`, top to bottom, covering every image row once.
        probabilities: also hand on float16 probabilities (else ``FinishedRows.probabilities`` is None).
        chunk: columns normalised at a time (bounds the temporaries).
    """

    def __init__(self, height: int, width: int, channels: int, band_rows: int,
                 weigher: Callable[[Window], np.ndarray], emit: Callable[[FinishedRows], None],
                 probabilities: bool = True, chunk: int = 1024):
        self.height = height
        self.probabilities = probabilities
        self.chunk = chunk
        self.band = RowBand(channels, band_rows, width)
        self.weigher = weigher
        self.emit = emit

    def add(self, window: Window, probabilities: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Blend one tile's (C, h, w) probabilities; ``valid`` (h, w) marks non-nodata pixels."""
        if window.row > self.band.top:
            self._finish(window.row)
        weight = self.weigher(window) + FLOOR
        if valid is not None:
            weight = weight * valid
        self.band.add(window, probabilities, weight)

    def skip(self, window: Window) -> None:
        """A tile left out of the work (all nodata): only moves the band on."""
        if window.row > self.band.top:
            self._finish(window.row)

    def close(self) -> None:
        """Emit the last rows."""
        while self.band.top < self.height:
            self._finish(min(self.height, self.band.top + self.band.rows))

    def _finish(self, upto: int) -> None:
        acc, weight = self.band.finished(upto)
        n, width = weight.shape
        mask = np.empty((n, width), np.uint8)
        probs = np.empty((n, width, acc.shape[0]), np.float16) if self.probabilities else None
        for c in range(0, width, self.chunk):  # bounded temporaries, whatever the width
            cols = slice(c, c + self.chunk)
            w = weight[:, cols]
            p = acc[:, :, cols] / np.where(w > 0, w, 1.0)
            m = (p[0] > 0.5) if p.shape[0] == 1 else p.argmax(axis=0)
            mask[:, cols] = np.where(w > 0, m, NODATA_CLASS)
            if probs is not None:
                probs[:, cols] = p.transpose(1, 2, 0)
        self.emit(FinishedRows(self.band.top, mask, probs))
        self.band.drop(upto)
