"""A held-out set: images calibration never saw, as model-input batches, with their masks when given.

Images are read and fitted by the calibration set (:class:`~edgekit.convert.calibration.CalibrationSet`,
the one pixel path); each mask is cut exactly like its image (:func:`edgekit.images.fit_mask` for
a folder image, the same window for a tile of a large image).
"""
from __future__ import annotations

__all__ = ["HeldOutSet"]

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edgekit.convert.calibration import CalibrationSet, Sample
from edgekit.images import fit_mask, match_masks, read_mask


@dataclass(frozen=True)
class HeldOutSet:
    """Held-out images and, optionally, a folder of label masks named like them.

    Attributes:
        images: the images, as a calibration set (its ``items``, batch and fit are used).
        masks: folder of label images (segmentation ground truth), or None.
    """

    images: CalibrationSet
    masks: Path | None = None

    @classmethod
    def beside(cls, images: CalibrationSet, masks: Path | None = None) -> "HeldOutSet":
        """``masks``, else the ``masks`` folder inside the image folder when there is one."""
        if masks is None and images.source.is_dir() and (images.source / "masks").is_dir():
            masks = images.source / "masks"
        return cls(images, Path(masks) if masks is not None else None)

    @property
    def items(self) -> tuple[Sample, ...]:
        return self.images.items

    @property
    def batch(self) -> int:
        return self.images.batch

    def __len__(self) -> int:
        return len(self.images)

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(inputs (N, C, H, W), truth (N, H, W) or None) per batch, read lazily in order."""
        items = self.items
        for b, inputs in enumerate(self.images.batches()):
            chunk = items[b * self.batch : (b + 1) * self.batch]
            yield inputs, (np.stack([self.mask(s) for s in chunk]) if self.masks is not None else None)

    def mask(self, sample: Sample) -> np.ndarray:
        """The labels of one item, cut like its pixels."""
        labels = read_mask(match_masks([sample.path], self.masks)[0])
        if sample.window is not None:
            row, col, h, w = sample.window
            return labels[row : row + h, col : col + w]
        return fit_mask(labels, self.images.input_size, self.images.fit)

    def key(self) -> dict:
        """What identifies this set's content (for caches)."""
        from edgekit.artifact.manifest import sha256_file

        masks = [sha256_file(p) for p in match_masks(sorted({s.path for s in self.items}), self.masks)] if self.masks else []
        return {"images": [f"{s.name}:{sha256_file(s.path)}" for s in self.items], "masks": masks,
                "shape": [self.batch, self.images.preprocess.channels, *self.images.input_size],
                "preprocess": self.images.preprocess.to_dict()}
