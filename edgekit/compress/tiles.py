"""Recovery tiles from one large image, chosen to cover what the teacher sees in it.

A folder of training images is used as it is: whoever cut it chose what it holds. One large image
(``--images big.tif``) is cut here. Cut blindly (the tile grid, shuffled, the first N), the west
half of the demo's Blue Marble gave 20 tiles of 67 % open ocean and half the lake pixels of the
folder cut from the same region by kind (calib/bluemarble: 52 % ocean, lakes, coasts and ice each
with a quota), and every level-2 plan recovered from them lost more than a point.

So the teacher labels the image once (the tile grid without overlap, one label every ``STRIDE``-th
pixel kept), candidate windows lie on a grid of a quarter tile, and N of them are chosen greedily,
each adding the most to sum over buckets of log(1 + pixels / tile area), the buckets being the
teacher's classes and its unsure pixels (top probability below ``UNSURE``: coasts, ice, class
boundaries), overlapping a chosen window by at most a quarter. A rare class is then sought out as
a cut by kind seeks it, and the class that covers most of the image fills only its share.
"""
from __future__ import annotations

__all__ = ["TrainingTiles", "training_tiles", "UNSURE", "STRIDE"]

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.images.image_set import CalibrationSet, Sample
from edgekit.errors import CalibrationError
from edgekit.preprocess import Preprocess

UNSURE = 0.9  # the teacher's top probability below this: a pixel of the 'unsure' bucket
STRIDE = 8  # one label kept every STRIDE pixels of the teacher's map
MAX_OVERLAP = 0.25  # of a tile's area, with any chosen tile
MAX_SCORED = 256  # grid tiles the teacher labels at most (a spread subset of a larger image)


@dataclass(frozen=True)
class TrainingTiles:
    """The chosen windows (row, col, h, w) of ``image`` as model-input batches, and what they cover.

    ``shares``: fraction of the chosen tiles' pixels in each teacher class (and, last, unsure);
    ``image_shares``: the same over the labelled image.
    """

    image: Path
    windows: tuple[tuple[int, int, int, int], ...]
    batches: list
    shares: tuple[float, ...]
    image_shares: tuple[float, ...]
    preprocess: Preprocess = Preprocess()
    masks: None = None  # one large image carries no labels: pure distillation

    def key(self) -> dict:
        """What identifies this set's content (for caches)."""
        from edgekit.cache import sha256_file

        return {"image": f"{self.image.name}:{sha256_file(self.image)}", "windows": [list(w) for w in self.windows],
                "shape": list(self.batches[0].shape), "preprocess": self.preprocess.to_dict(),
                "chosen_by": {"unsure": UNSURE, "stride": STRIDE, "overlap": MAX_OVERLAP}}

    def to_dict(self) -> dict:
        return {"image": str(self.image), "tiles": len(self.windows), "windows": [list(w) for w in self.windows],
                "class_shares": [round(s, 4) for s in self.shares],
                "image_class_shares": [round(s, 4) for s in self.image_shares],
                "chosen_by": f"teacher's classes and unsure pixels (top probability < {UNSURE}), log coverage"}


def training_tiles(teacher, image: Path, input_size: tuple[int, int], preprocess: Preprocess, samples: int,
                   batch: int, progress: Callable[[str], None] | None = None) -> TrainingTiles:
    """``samples`` tiles of ``image`` (rounded down to whole batches) covering the teacher's classes.

    Raises:
        CalibrationError: the image is smaller than the input, or gives fewer tiles than one batch.
    """
    import torch

    say = progress or (lambda _m: None)
    grid = CalibrationSet(Path(image), input_size, preprocess)
    scored = grid.order[:MAX_SCORED]  # shuffled: a spread subset when the grid is larger
    height, width = _shape(Path(image))
    labels = np.full((-(-height // STRIDE), -(-width // STRIDE)), -1, np.int32)
    say(f"label {len(scored)} tiles of {Path(image).name} with the original to choose recovery tiles")
    classes = 0
    teacher = teacher.eval()
    with torch.no_grad():
        for s in scored:
            probs = torch.softmax(teacher(torch.from_numpy(grid.model_input(s)[None])), 1)[0]
            top, label = probs.max(0)
            classes = probs.shape[0]
            code = np.atleast_2d(torch.where(top < UNSURE, classes, label).numpy())  # a classifier: one label a tile
            r, c, h, w = s.window
            rows, cols = np.arange(-(-r // STRIDE), -(-(r + h) // STRIDE)), np.arange(-(-c // STRIDE), -(-(c + w) // STRIDE))
            at = ((rows * STRIDE - r) * code.shape[0] // h, (cols * STRIDE - c) * code.shape[1] // w)  # any output stride
            labels[np.ix_(rows, cols)] = code[np.ix_(*at)]
    windows, counts = _candidates(labels, input_size, height, width, classes + 1)
    wanted = min(samples, len(windows))
    wanted -= wanted % batch
    if wanted < 1:
        raise CalibrationError(f"{image} gives {len(windows)} tiles of {input_size[0]}x{input_size[1]}, fewer than one "
                               f"batch of {batch}: give a larger image or a folder, or lower --batch")
    chosen = _choose(windows, counts, wanted, input_size)
    picked = [windows[i] for i in chosen]
    arrays = [grid.model_input(Sample(Path(image), w)) for w in picked]
    known = labels[labels >= 0]
    return TrainingTiles(Path(image), tuple(picked), [np.stack(arrays[i : i + batch]) for i in range(0, wanted, batch)],
                         _shares(counts[chosen].sum(0)), _shares(np.bincount(known, minlength=classes + 1)), preprocess)


def _shape(path: Path) -> tuple[int, int]:
    from edgekit.images import open_image

    with open_image(path) as image:
        return image.shape[0], image.shape[1]


def _positions(extent: int, size: int) -> list[int]:
    step = max(size // 4, 1)
    return sorted(set(range(0, extent - size + 1, step)) | {extent - size})


def _candidates(labels: np.ndarray, size: tuple[int, int], height: int, width: int, buckets: int):
    """Windows on a quarter-tile grid whose pixels the teacher labelled, and each one's bucket counts
    (pixels, estimated from the kept labels)."""
    windows, counts = [], []
    for r in _positions(height, size[0]):
        for c in _positions(width, size[1]):
            cells = labels[-(-r // STRIDE) : -(-(r + size[0]) // STRIDE), -(-c // STRIDE) : -(-(c + size[1]) // STRIDE)]
            if cells.size and (cells >= 0).all():
                windows.append((r, c, size[0], size[1]))
                counts.append(np.bincount(cells.ravel(), minlength=buckets) * (size[0] * size[1] / cells.size))
    return windows, np.asarray(counts, np.float64).reshape(len(windows), buckets)


def _choose(windows: list, counts: np.ndarray, wanted: int, size: tuple[int, int]) -> list[int]:
    """Greedy log coverage of the buckets, each window overlapping a chosen one by MAX_OVERLAP at most
    (relaxed only when no window is left that respects it)."""
    area = float(size[0] * size[1])
    pos = np.asarray([(w[0], w[1]) for w in windows], np.float64)
    total = np.zeros(counts.shape[1])
    free = np.ones(len(windows), bool)
    unused = np.ones(len(windows), bool)
    chosen: list[int] = []
    while len(chosen) < wanted:
        gain = (np.log1p((total + counts) / area) - np.log1p(total / area)).sum(1)
        pool = free & unused if (free & unused).any() else unused
        i = int(np.argmax(np.where(pool, gain, -np.inf)))  # ties: the first on the grid
        chosen.append(i)
        unused[i] = False
        total += counts[i]
        overlap = (np.clip(size[0] - np.abs(pos[:, 0] - pos[i, 0]), 0, None)
                   * np.clip(size[1] - np.abs(pos[:, 1] - pos[i, 1]), 0, None)) / area
        free &= overlap <= MAX_OVERLAP
    return chosen


def _shares(counts: np.ndarray) -> tuple[float, ...]:
    total = counts.sum()
    return tuple(float(c / total) if total else 0.0 for c in counts)
