"""From a file's raw pixels to a model's input tile: the one place that does it.

:class:`PixelMap` checks a file against what the artifact declares (pixel type against the
declared ``scale``, band count against ``bands`` or the model's channels), picks the bands that
feed the model, finds nodata and NaN, pads windows smaller than a tile (reflect) and applies the
:class:`~edgekit.preprocess.Preprocess`: ``(pixel / scale - mean) / std``. Calibration,
verification, compare, optimize, sweep and infer all turn pixels into inputs through it.
"""
from __future__ import annotations

__all__ = ["PixelMap", "band_index"]

import math
from dataclasses import dataclass

import numpy as np

from edgekit.errors import InputError
from edgekit.preprocess import Preprocess, pixel_types_text, wrong_pixels_step


def band_index(bands: int, preprocess: Preprocess, name: str) -> np.ndarray | None:
    """Which file band (0-based) feeds each model channel; None: all bands, in order.

    Raises:
        InputError: the file lacks a declared band, or its band count does not fit the model.
    """
    channels = preprocess.channels
    if preprocess.bands is not None:
        if max(preprocess.bands) > bands:
            raise InputError(f"{name} has {bands} band{'s' * (bands != 1)} but the artifact declares bands "
                             f"{list(preprocess.bands)}; give a file with those bands or rebuild with --bands")
        return np.asarray(preprocess.bands, np.int64) - 1
    if bands == channels:
        return None
    if bands == 1:
        return np.zeros(channels, np.int64)  # grey to every channel
    if bands == channels + 1:
        return np.arange(channels)  # RGBA (or RGB + NIR): the first ones
    raise InputError(
        f"{name} has {bands} bands and the model takes {channels} channels; give a 1-band or {channels}-band "
        f"image{' (or RGBA)' if channels == 3 else ''}, or rebuild with --bands naming the {channels} bands to use"
    )


def _check_type(dtype, preprocess: Preprocess, name: str) -> None:
    kind = np.dtype(dtype).name
    if kind not in preprocess.pixel_types:
        step = wrong_pixels_step(kind, preprocess.scale, preprocess.channels)
        raise InputError(f"{name} holds {kind} pixels but the artifact declares scale {preprocess.scale:g} "
                         f"(it fits {pixel_types_text(preprocess.scale)}); {step}")


@dataclass(frozen=True)
class PixelMap:
    """How one image's raw windows become model input tiles.

    Attributes:
        name: the file's name, for messages.
        preprocess: the artifact's declared units and normalisation.
        bands: file band of each model channel (None: all, in order).
        nodata: the file's nodata value (NaN allowed), or None.
        tile: the model input's (height, width); smaller windows are padded to it.
    """

    name: str
    preprocess: Preprocess
    bands: np.ndarray | None
    nodata: float | None
    tile: tuple[int, int]

    @classmethod
    def for_source(cls, source, preprocess: Preprocess, tile: tuple[int, int]) -> "PixelMap":
        """Check an open image's pixel type and bands against ``preprocess``, or raise :class:`InputError`."""
        name = source.path.name
        _check_type(source.dtype, preprocess, name)
        return cls(name, preprocess, band_index(source.shape[2], preprocess, name), source.nodata, tuple(tile))

    def valid(self, raw: np.ndarray, window=None) -> np.ndarray | None:
        """(h, w) True where a pixel holds data; None when the whole window does. NaN is an error
        unless the file declares NaN as its nodata."""
        invalid = None
        if raw.dtype.kind == "f":
            nan = np.isnan(raw).any(axis=-1)
            if nan.any() and not (self.nodata is not None and math.isnan(self.nodata)):
                where = f" in rows {window.row}..{window.bottom}" if window is not None else ""
                raise InputError(f"{self.name} has NaN pixels{where}; fill them or declare NaN as the file's nodata value")
            invalid = nan if nan.any() else None
        if self.nodata is not None and not math.isnan(self.nodata):
            hit = (raw == self.nodata).all(axis=-1)
            if hit.any():
                invalid = hit if invalid is None else invalid | hit
        return None if invalid is None else ~invalid

    def channels(self, raw: np.ndarray) -> np.ndarray:
        """Raw (h, w, bands) pixels -> (h, w, channels) in the model's band order, still raw units."""
        return raw if self.bands is None else raw[..., self.bands]

    def model_input(self, raw: np.ndarray, window=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Model input (C, tile_h, tile_w) float32 for a window's raw pixels, and its valid mask.

        Nodata pixels get the mean (a neutral input, 0 after normalisation).
        """
        valid = self.valid(raw, window)
        pixels = self.channels(raw)
        if valid is not None:
            pixels = pixels.astype(np.float32)
            pixels[~valid] = 0.0
        x = self.preprocess.apply(self._pad(pixels))[0]
        if valid is not None:
            x[:, : valid.shape[0], : valid.shape[1]][:, ~valid] = 0.0
        return x, valid

    def _pad(self, pixels: np.ndarray) -> np.ndarray:
        """Reflect-pad a window smaller than the tile (an image smaller than the tile) at bottom/right."""
        dh, dw = self.tile[0] - pixels.shape[0], self.tile[1] - pixels.shape[1]
        if dh <= 0 and dw <= 0:
            return pixels
        mode = "reflect" if min(pixels.shape[:2]) > 1 else "edge"
        return np.pad(pixels, ((0, max(dh, 0)), (0, max(dw, 0)), (0, 0)), mode=mode)
