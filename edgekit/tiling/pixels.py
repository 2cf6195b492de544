"""From a file's pixels to a model's input tile, and back to something a person can look at.

:class:`PixelMap` maps bands to the model's channels, scales 8/16-bit and float pixels to the
preprocessing's units, finds nodata and NaN, pads windows smaller than a tile (reflect) and
applies the artifact's :class:`~edgekit.preprocess.Preprocess`. :class:`Preview` keeps a
downsampled copy of the image and the mask for a colour overlay PNG.
"""
from __future__ import annotations

__all__ = ["PixelMap", "Preview", "PALETTE"]

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import ArtifactError, InputError
from edgekit.preprocess import Preprocess
from edgekit.tiling.geometry import Window

# full-scale value of each supported pixel type (floats are taken as 0..1 reflectance)
FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0, "int16": 32767.0, "float16": 1.0, "float32": 1.0, "float64": 1.0}
PALETTE = np.array([
    [31, 119, 180], [44, 160, 44], [255, 127, 14], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
], np.uint8)


def _band_index(bands: int, channels: int, name: str) -> np.ndarray | None:
    """Which file band feeds each model channel (None: all, in order)."""
    if bands == channels:
        return None
    if bands == 1:
        return np.zeros(channels, np.int64)  # grey to every channel
    if bands == 4 and channels == 3:
        return np.arange(3)  # RGBA (or RGB + NIR): the first three
    raise InputError(
        f"{name} has {bands} bands and the model takes {channels} channels; "
        f"give a 1-band or {channels}-band image" + (" (or RGBA)" if channels == 3 else "")
    )


@dataclass(frozen=True)
class PixelMap:
    """How one image's raw windows become model input tiles."""

    name: str
    preprocess: Preprocess
    bands: np.ndarray | None
    factor: float
    nodata: float | None
    tile: tuple[int, int]

    @classmethod
    def for_source(cls, source, preprocess: Preprocess, channels: int, tile: tuple[int, int]) -> "PixelMap":
        """Check the source's bands and dtype against the model, or raise :class:`InputError`."""
        name = source.path.name
        index = _band_index(source.shape[2], channels, name)
        if preprocess.channels != channels:
            raise ArtifactError(
                f"the manifest's preprocessing has {preprocess.channels} channels, the model takes {channels}; rebuild the artifact"
            )
        factor = preprocess.scale / FULL_SCALE[np.dtype(source.dtype).name]
        return cls(name, preprocess, index, factor, source.nodata, tile)

    def valid(self, raw: np.ndarray, window: Window) -> np.ndarray | None:
        """(h, w) True where a pixel holds data; None when the whole window does. NaN is an error
        unless the file declares NaN as its nodata."""
        invalid = None
        if raw.dtype.kind == "f":
            nan = np.isnan(raw).any(axis=-1)
            if nan.any() and not (self.nodata is not None and math.isnan(self.nodata)):
                raise InputError(
                    f"{self.name} has NaN pixels in rows {window.row}..{window.bottom}; "
                    "fill them or declare NaN as the file's nodata value"
                )
            invalid = nan if nan.any() else None
        if self.nodata is not None and not math.isnan(self.nodata):
            hit = (raw == self.nodata).all(axis=-1)
            if hit.any():
                invalid = hit if invalid is None else invalid | hit
        return None if invalid is None else ~invalid

    def model_input(self, raw: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray | None]:
        """Model input (C, tile_h, tile_w) float32 for a window's raw pixels, and its valid mask."""
        valid = self.valid(raw, window)
        pixels = raw if self.bands is None else raw[..., self.bands]
        pixels = pixels.astype(np.float32) * np.float32(self.factor)
        if valid is not None:
            pixels[~valid] = 0.0
        x = self.preprocess.apply(self._pad(pixels))[0]
        if valid is not None:
            x[:, : valid.shape[0], : valid.shape[1]][:, ~valid] = 0.0  # the mean: neutral input
        return x, valid

    def _pad(self, pixels: np.ndarray) -> np.ndarray:
        """Reflect-pad a window smaller than the tile (an image smaller than the tile) at bottom/right."""
        dh, dw = self.tile[0] - pixels.shape[0], self.tile[1] - pixels.shape[1]
        if dh <= 0 and dw <= 0:
            return pixels
        mode = "reflect" if min(pixels.shape[:2]) > 1 else "edge"
        return np.pad(pixels, ((0, max(dh, 0)), (0, max(dw, 0)), (0, 0)), mode=mode)


class Preview:
    """A downsampled image and mask, filled as tiles are read and rows finished; saved as an overlay."""

    def __init__(self, height: int, width: int, dtype, max_side: int = 1024):
        self.step = max(1, math.ceil(max(height, width) / max_side))
        shape = (math.ceil(height / self.step), math.ceil(width / self.step))
        self.image = np.zeros((*shape, 3), np.uint8)
        self.mask = np.full(shape, 255, np.uint8)
        self.full = FULL_SCALE[np.dtype(dtype).name]

    @classmethod
    def for_source(cls, source) -> "Preview":
        return cls(source.shape[0], source.shape[1], source.dtype)

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
