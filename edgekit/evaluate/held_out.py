"""Validation images held in memory as model-input batches with their masks, for the searches
(optimize, compress, sweep): a :class:`~edgekit.images.held_out.HeldOutSet` read once."""
from __future__ import annotations

__all__ = ["ValidationData"]

from pathlib import Path

from edgekit.images.held_out import HeldOutSet
from edgekit.images.image_set import CalibrationSet
from edgekit.preprocess import Preprocess


class ValidationData:
    """Validation images as model-input batches (held in memory: keep the set small), with masks.

    A :class:`~edgekit.evaluate.HeldOutSet` read once: the same pixel path and mask fitting as
    build verification.

    Args:
        folder: images; a ``masks`` subfolder with label images of the same names is used when present.
        input_size: the model's (height, width).
        preprocess: the model's normalisation.
        batch: the model's batch size.
        samples: images to use (None: all).
        masks: a mask folder other than ``<folder>/masks``.
        ground_truth: False ignores masks (agreement with FP32 becomes the metric).
    """

    def __init__(self, folder: Path, input_size: tuple[int, int], preprocess: Preprocess, batch: int = 1,
                 samples: int | None = None, masks: Path | None = None, ground_truth: bool = True):
        images = CalibrationSet(Path(folder), input_size, preprocess, samples=samples, batch=batch)
        self.folder = Path(folder)
        self.held = HeldOutSet.beside(images, masks) if ground_truth else HeldOutSet(images)
        self.items = images.items
        pairs = list(self.held.batches())
        self.batches = [x for x, _ in pairs]
        self.masks = [t for _, t in pairs] if self.held.masks is not None else None

    @property
    def has_masks(self) -> bool:
        return self.masks is not None

    def key(self) -> dict:
        """What identifies this set's content (for caches)."""
        return self.held.key()
