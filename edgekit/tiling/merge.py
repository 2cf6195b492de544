"""Stitching: blend tile outputs, keeping floats only for the pixels still being blended.

Tiles arrive row-major. The current tile row's sums are kept in column blocks. Once the tiles
of a row have moved past a block, the block's rows above the next tile row are final: they become
class ids (and float16 probabilities when asked) at once, and the block keeps floats only for the
rows the next tile row shares. Float memory is therefore (classes + 1) x 4 bytes x (the rows two
tile rows share x image width + a tile height x a few blocks), plus one byte per pixel for the
finished rows of the current tile row: it depends on tile size, overlap, classes and image width,
never on image height, and it is far below a band of full tile rows.
Blending acts on probabilities (softmax of the logits, sigmoid for one channel), never class ids.
"""
from __future__ import annotations

__all__ = ["FinishedRows", "Stitcher", "NODATA_CLASS", "probabilities_from_logits"]

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgekit.images.geometry import Window

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


def probabilities_from_output(out: np.ndarray, size: tuple[int, int], probabilities: bool = False) -> np.ndarray:
    """(N, C, h, w) model output -> (N, C, *size) probabilities.

    An output at a lower resolution than the tile is upsampled first, bilinearly on the logits
    (half-pixel centres, as ``torch.nn.functional.interpolate(..., align_corners=False)``), so the
    softmax sees interpolated logits. An output that already holds probabilities is not
    softmaxed again (bilinear weights sum to 1, so upsampled probabilities still do).
    """
    x = out.astype(np.float32, copy=False)
    if tuple(x.shape[2:]) != tuple(size):
        x = upsample_bilinear(x, size)
    return x if probabilities else probabilities_from_logits(x)


def upsample_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, C, h, w) -> (N, C, H, W), bilinear with half-pixel centres and edge clamping."""
    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (src - lo).astype(np.float32)

    (y0, y1, wy), (x0, x1, wx) = axis(x.shape[2], size[0]), axis(x.shape[3], size[1])
    rows = x[:, :, y0] * (1 - wy)[:, None] + x[:, :, y1] * wy[:, None]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


@dataclass(frozen=True)
class FinishedRows:
    """Rows ``top .. top + n`` of the result: class ids (n, W) uint8, probabilities (n, W, C) float16 or None."""

    top: int
    mask: np.ndarray
    probabilities: np.ndarray | None


class _Block:
    """Sums (C, rows, w) and weights (rows, w) of one column block, for rows ``top ..`` of the tile row."""

    def __init__(self, channels: int, rows: int, width: int):
        self.acc = np.zeros((channels, rows, width), np.float32)
        self.weight = np.zeros((rows, width), np.float32)

    def grown(self, rows: int) -> "_Block":
        """This block's rows at the top of a zeroed block ``rows`` high."""
        if self.weight.shape[0] == rows:
            return self
        block = _Block(self.acc.shape[0], rows, self.weight.shape[1])
        n = self.weight.shape[0]
        block.acc[:, :n], block.weight[:n] = self.acc, self.weight
        return block

    def tail(self, start: int) -> "_Block | None":
        """A copy of rows ``start ..`` (the rows the next tile row shares), or None when nothing is there."""
        if start >= self.weight.shape[0] or not self.weight[start:].any():
            return None
        block = _Block.__new__(_Block)
        block.acc, block.weight = self.acc[:, start:].copy(), self.weight[start:].copy()
        return block

    @property
    def nbytes(self) -> int:
        return self.acc.nbytes + self.weight.nbytes


class Stitcher:
    """Blends tiles arriving row-major and calls ``emit`` with each tile row's finished rows.

    Args:
        height / width: image size.
        channels: classes (the model's output channels).
        rows: start rows of the tile rows (:attr:`TileLayout.rows`), in order.
        tile_h: tile height (clipped to the image).
        weigher: window -> (h, w) blending weights.
        emit: receives :class:`FinishedRows`, top to bottom, covering every image row once.
        probabilities: also hand on float16 probabilities (else ``FinishedRows.probabilities`` is None).
        block: width of the column blocks.
    """

    def __init__(self, height: int, width: int, channels: int, rows: list[int], tile_h: int,
                 weigher: Callable[[Window], np.ndarray], emit: Callable[[FinishedRows], None],
                 probabilities: bool = True, block: int = 128):
        self.height, self.width, self.channels, self.tile_h = height, width, channels, tile_h
        self.starts = list(rows) + [height]  # the last tile row finishes every row left
        self.weigher, self.emit, self.probabilities, self.block = weigher, emit, probabilities, block
        self.blocks: dict[int, _Block] = {}
        self.row_index = 0
        self.cursor = 0  # blocks left of this one are final for the current tile row
        self._start_row()
        self.peak_bytes = 0

    @property
    def top(self) -> int:
        return self.starts[self.row_index]

    @property
    def final_rows(self) -> int:
        """Rows of the current tile row that no later tile row touches."""
        return self.starts[self.row_index + 1] - self.top

    def _start_row(self) -> None:
        n = self.final_rows
        self.mask = np.full((n, self.width), NODATA_CLASS, np.uint8)
        self.probs = np.zeros((n, self.width, self.channels), np.float16) if self.probabilities else None

    @property
    def nbytes(self) -> int:
        """Bytes held now: float blocks and the finished rows of the current tile row."""
        rows = [a.nbytes for a in (self.mask, self.probs) if a is not None]
        return sum(b.nbytes for b in self.blocks.values()) + sum(rows)

    def add(self, window: Window, probabilities: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Blend one tile's (C, h, w) probabilities; ``valid`` (h, w) marks non-nodata pixels."""
        self._advance(window)
        weight = self.weigher(window) + FLOOR
        if valid is not None:
            weight = weight * valid
        r = window.row - self.top
        for k in range(window.col // self.block, (window.right - 1) // self.block + 1):
            c0 = k * self.block
            lo, hi = max(window.col, c0), min(window.right, c0 + self.block, self.width)
            block = self.blocks.get(k) or _Block(self.channels, self.tile_h, min(self.block, self.width - c0))
            block = self.blocks[k] = block.grown(self.tile_h)
            w = weight[:, lo - window.col:hi - window.col]
            block.acc[:, r:r + window.height, lo - c0:hi - c0] += probabilities[:, :, lo - window.col:hi - window.col] * w
            block.weight[r:r + window.height, lo - c0:hi - c0] += w
        self.peak_bytes = max(self.peak_bytes, self.nbytes)

    def skip(self, window: Window) -> None:
        """A tile left out of the work (all nodata): only moves the stitching on."""
        self._advance(window)

    def close(self) -> None:
        """Emit the last rows."""
        while self.row_index < len(self.starts) - 1:
            self._next_row()

    def _advance(self, window: Window) -> None:
        while window.row > self.top:
            self._next_row()
        for k in range(self.cursor, window.col // self.block):
            self._finish_block(k)
        self.cursor = max(self.cursor, window.col // self.block)

    def _next_row(self) -> None:
        for k in range(self.cursor, -(-self.width // self.block)):
            self._finish_block(k)
        self.emit(FinishedRows(self.top, self.mask, self.probs))
        self.mask = self.probs = None  # freed before the next tile row's rows are allocated
        self.row_index += 1
        self.cursor = 0
        if self.row_index < len(self.starts) - 1:
            self._start_row()

    def _finish_block(self, k: int) -> None:
        """Turn block ``k``'s final rows into class ids; keep floats only for the rows shared below."""
        block = self.blocks.pop(k, None)
        if block is None:
            return
        block = block.grown(self.tile_h)  # a block carried from above that no tile of this row touched
        n, cols = self.final_rows, slice(k * self.block, k * self.block + block.weight.shape[1])
        w = block.weight[:n]
        p = block.acc[:, :n] / np.where(w > 0, w, 1.0)
        m = (p[0] > 0.5) if p.shape[0] == 1 else p.argmax(axis=0)
        self.mask[:, cols] = np.where(w > 0, m, NODATA_CLASS)
        if self.probs is not None:
            self.probs[:, cols] = p.transpose(1, 2, 0)
        rest = block.tail(n)
        if rest is not None:
            self.blocks[k] = rest
