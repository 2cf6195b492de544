"""Image sets: a folder of pictures, or one large image cut into tiles, as model-input batches.

The one image-set loader: build calibration and verification, held-out scoring, optimize and
compress read their images through it. It sits in evaluate, above tiling, because a large image is
cut by the tile planner.

Images are read as they are needed, one batch at a time, so a set of any size costs the memory of
one batch. The order is fixed (sorted names or tile positions, then a seeded shuffle), so the first
``samples`` items are spread over the whole set and the items after them are a held-out set
(:meth:`CalibrationSet.held_out`).

Every image is read and turned into model input by the one pixel path, :mod:`edgekit.images`
(declared scale and bands, nodata and NaN, as `edgekit infer` does). A folder image is brought to
``input_size`` by :func:`edgekit.images.fit_image` (``crop`` or ``resize``); a single large image is
cut into input-sized tiles by the tile planner (:class:`edgekit.images.geometry.TileLayout`, no
overlap), never resized.
"""
from __future__ import annotations

__all__ = ["CalibrationSet", "Sample", "FITS"]

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np

from edgekit.errors import CalibrationError, InputError
from edgekit.images import FITS, PixelMap, fit_image, list_images, open_image
from edgekit.preprocess import Preprocess
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
            items = [Sample(self.source, w) for w in _tile_windows(self.source, self.input_size)]
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
    def _raw(self, sample: Sample) -> tuple[np.ndarray, PixelMap]:
        """One item's raw pixels at ``input_size`` (file bands, file units) and its pixel map."""
        with open_image(sample.path) as image:
            pixels = PixelMap.for_source(image, self.preprocess, self.input_size)
            if sample.window is not None:
                return image.read(*sample.window), pixels
            raw = image.read(0, 0, image.shape[0], image.shape[1])
        return fit_image(raw, self.input_size, self.fit), pixels

    def pixels(self, sample: Sample) -> np.ndarray:
        """One item as (H, W, C) pixels of ``input_size`` in the model's bands, before normalisation."""
        raw, pixels = self._raw(sample)
        return pixels.channels(raw)

    def model_input(self, sample: Sample) -> np.ndarray:
        """One item as the model's (C, H, W) float32 input, through the one pixel path."""
        raw, pixels = self._raw(sample)
        return pixels.model_input(raw)[0]

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Preprocessed float32 (batch, C, H, W) arrays for batches [start, stop), read lazily in order."""
        items = self.items
        stop = len(self) if stop is None else min(stop, len(self))
        for b in range(start, stop):
            chunk = items[b * self.batch : (b + 1) * self.batch]
            yield np.stack([self.model_input(s) for s in chunk])

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.batches()


# ---- listing ---------------------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    try:
        return list_images(folder)
    except InputError as exc:
        raise CalibrationError(str(exc)) from None


def _tile_windows(path: Path, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Input-sized windows covering one large image: the tile planner's grid, without overlap."""
    from edgekit.images.geometry import TileLayout

    with open_image(path) as image:
        height, width = image.shape[:2]
    if height < size[0] or width < size[1]:
        raise CalibrationError(f"image of {height}x{width} is smaller than the model input {size[0]}x{size[1]}")
    return [(w.row, w.col, w.height, w.width) for w in TileLayout(height, width, size[0], size[1], 0).windows()]
