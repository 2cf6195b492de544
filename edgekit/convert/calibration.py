"""Calibration images: a folder of pictures, or one large image cut into tiles, as model-input batches.

Images are read as they are needed, one batch at a time, so a set of any size costs the memory of
one batch. The order is fixed (sorted names or tile positions, then a seeded shuffle), so the first
``samples`` items are spread over the whole set and the items after them are a held-out set
(:meth:`CalibrationSet.held_out`).

How an image becomes an input of ``input_size`` (``fit``):
    ``crop`` (default, for tiled segmentation): keep the pixel scale; centre-crop an image larger
        than the input, enlarge (bilinear) only an image smaller than it, just enough to cover it.
    ``resize`` (classification): scale the image so its shorter side covers the input, then
        centre-crop, the timm evaluation convention.
A single large image is cut into input-sized tiles on a grid (edge tiles shifted back inside the
image), never resized.
"""
from __future__ import annotations

__all__ = ["CalibrationSet", "Sample", "IMAGE_SUFFIXES", "FITS"]

from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from edgekit.errors import CalibrationError
from edgekit.preprocess import Preprocess

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
FITS = ("crop", "resize")
SHUFFLE_SEED = 0


@dataclass(frozen=True)
class Sample:
    """One calibration item: an image file, or a window (row, col, h, w) of a large one."""

    path: Path
    window: tuple[int, int, int, int] | None = None

    @property
    def name(self) -> str:
        if self.window is None:
            return self.path.name
        row, col, _, _ = self.window
        return f"{self.path.name}@{row},{col}"


@dataclass(frozen=True)
class CalibrationSet:
    """Images that stand for the data a model will see, fed as preprocessed NCHW float32 batches.

    Attributes:
        source: a folder of PNG/JPEG/TIFF images (subfolders ignored), or one image file to tile.
        input_size: the model's input (height, width).
        preprocess: the recipe's / manifest's normalisation.
        samples: how many images (or tiles) to use; None: all of them.
        batch: images per batch, the model's batch dimension.
        fit: ``crop`` or ``resize``, how a folder image is brought to ``input_size`` (module docstring).
        offset: items skipped at the start of the order (used by :meth:`held_out`).
    """

    source: Path
    input_size: tuple[int, int]
    preprocess: Preprocess = Preprocess()
    samples: int | None = None
    batch: int = 1
    fit: str = "crop"
    offset: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Path(self.source))
        object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        if self.fit not in FITS:
            raise CalibrationError(f"unknown fit {self.fit!r}; choose one of: {', '.join(FITS)}")
        if self.batch < 1 or (self.samples is not None and self.samples < 1):
            raise CalibrationError(f"batch ({self.batch}) and samples ({self.samples}) must be at least 1")

    # ---- which items -------------------------------------------------------------------------
    @cached_property
    def order(self) -> tuple[Sample, ...]:
        """Every item of the source in the fixed, shuffled order."""
        if self.source.is_dir():
            items = [Sample(p) for p in _image_files(self.source)]
        elif self.source.is_file():
            items = [Sample(self.source, w) for w in _tile_windows(_image_shape(self.source), self.input_size)]
        else:
            raise CalibrationError(f"calibration source {self.source} does not exist; give a folder of images or an image")
        perm = np.random.default_rng(SHUFFLE_SEED).permutation(len(items))
        return tuple(items[i] for i in perm)

    @cached_property
    def items(self) -> tuple[Sample, ...]:
        """The items this set uses; a CalibrationError when there are fewer than asked."""
        available = len(self.order) - self.offset
        wanted = available if self.samples is None else self.samples
        if available < 1:
            raise CalibrationError(
                f"{self.source} has no images left after the {self.offset} used for calibration: "
                "add images, lower --calib-samples, or give a held-out folder"
            )
        if available < wanted:
            raise CalibrationError(
                f"{self.source} has {max(available, 0)} usable images"
                f"{f' after the first {self.offset}' if self.offset else ''}, {wanted} asked: "
                "add images or lower --calib-samples"
            )
        if wanted < self.batch:
            raise CalibrationError(f"{wanted} calibration images cannot fill one batch of {self.batch}")
        used = wanted - wanted % self.batch
        return self.order[self.offset : self.offset + used]

    def with_samples(self, samples: int) -> "CalibrationSet":
        """The same source and order, limited to ``samples`` items."""
        return replace(self, samples=samples)

    def held_out(self, samples: int | None = None) -> "CalibrationSet":
        """The items after the ones this set uses: images calibration never saw."""
        return replace(self, offset=self.offset + len(self.items), samples=samples)

    def __len__(self) -> int:
        """Number of batches."""
        return len(self.items) // self.batch

    # ---- pixels ------------------------------------------------------------------------------
    def pixels(self, sample: Sample) -> np.ndarray:
        """One item as (H, W, C) RGB pixels of ``input_size``, before normalisation."""
        if sample.window is not None:
            return _channels(_read_window(sample.path, sample.window), self.preprocess.channels)
        image = _channels(_read_whole(sample.path), self.preprocess.channels)
        return _fit(image, self.input_size, self.fit)

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Preprocessed float32 (batch, C, H, W) arrays for batches [start, stop), read lazily in order."""
        items = self.items
        stop = len(self) if stop is None else min(stop, len(self))
        for b in range(start, stop):
            chunk = items[b * self.batch : (b + 1) * self.batch]
            yield self.preprocess.apply(np.stack([self.pixels(s) for s in chunk]))

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.batches()


# ---- listing ---------------------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"{folder} holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images")
    return files


def _axis_starts(length: int, tile: int) -> list[int]:
    """Tile starts along one axis; the last tile is shifted back so it lies inside the image."""
    if length < tile:
        return []
    starts = list(range(0, length - tile + 1, tile))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _tile_windows(shape: tuple[int, ...], size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    h, w = size
    windows = [(r, c, h, w) for r in _axis_starts(shape[0], h) for c in _axis_starts(shape[1], w)]
    if not windows:
        raise CalibrationError(f"image of {shape[0]}x{shape[1]} is smaller than the model input {h}x{w}")
    return windows


# ---- reading ---------------------------------------------------------------------------------
def _tiling_io():
    """edgekit.tiling.io when it is installed (windowed reads of large images), else None."""
    try:
        from edgekit.tiling import io
    except ImportError:
        return None
    return io if hasattr(io, "open_image") else None


@contextmanager
def _opened(path: Path):
    io = _tiling_io()
    if io is None:
        yield _WholeImage(_read_whole_cached(path))
        return
    try:
        with io.open_image(path) as image:
            yield image
    except CalibrationError:
        raise
    except Exception as exc:  # any reader's own error type: the file is unreadable
        raise CalibrationError(f"cannot read calibration image {path}: {exc}") from None


class _WholeImage:
    """The open_image interface over an array already in memory (fallback without edgekit.tiling)."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        return self.array[row : row + h, col : col + w]


def _image_shape(path: Path) -> tuple[int, ...]:
    with _opened(path) as image:
        return tuple(image.shape)


def _read_window(path: Path, window: tuple[int, int, int, int]) -> np.ndarray:
    with _opened(path) as image:
        return np.asarray(image.read(*window))


def _read_whole(path: Path) -> np.ndarray:
    """An image file as (H, W, C) pixels in its own dtype."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            array = tifffile.imread(path)
        else:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = None
            with Image.open(path) as im:
                array = np.asarray(im.convert("RGB") if im.mode in ("P", "PA", "CMYK", "YCbCr") else im)
    except Exception as exc:  # Pillow and tifffile raise many types for broken files
        raise CalibrationError(f"cannot read calibration image {path}: {exc}") from None
    return array[..., None] if array.ndim == 2 else array


_read_whole_cached = lru_cache(maxsize=1)(_read_whole)  # fallback: tiles of one image, read once


def _channels(array: np.ndarray, channels: int) -> np.ndarray:
    """Bring (H, W, C) pixels to the model's channel count (grey repeated, alpha dropped)."""
    array = array[..., None] if array.ndim == 2 else array
    have = array.shape[-1]
    if have == channels:
        return array
    if have == 1:
        return np.repeat(array, channels, axis=-1)
    if have == channels + 1:
        return array[..., :channels]
    raise CalibrationError(f"an image has {have} channels, the model takes {channels}")


def _fit(image: np.ndarray, size: tuple[int, int], fit: str) -> np.ndarray:
    """Scale (when ``fit`` says so, or the image is too small) then centre-crop to ``size``."""
    h, w = size
    ih, iw = image.shape[:2]
    cover = max(h / ih, w / iw)
    scale = cover if fit == "resize" or cover > 1 else 1.0
    if scale != 1.0:
        image = _resize(image, (max(h, round(ih * scale)), max(w, round(iw * scale))))
        ih, iw = image.shape[:2]
    top, left = (ih - h) // 2, (iw - w) // 2
    return image[top : top + h, left : left + w]


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (H, W, C) pixels, channel by channel in float32 (any dtype)."""
    from PIL import Image

    planes = [
        np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize((size[1], size[0]), Image.BILINEAR))
        for c in range(image.shape[-1])
    ]
    return np.stack(planes, axis=-1)
