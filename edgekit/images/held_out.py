"""A held-out set: images calibration never saw, as model-input batches, with their truth when given.

Truth is a folder of label masks named like the images (segmentation; ``<images>/masks`` by default)
or a ``labels.csv`` beside the images (classification): one ``file,class`` row per image, the class
an index (``0``) or a name of the model's classes, a header row allowed.

Images are read and fitted by the calibration set (:class:`~edgekit.images.image_set.CalibrationSet`,
the one pixel path); each mask is cut exactly like its image (:func:`edgekit.images.fit_mask` for
a folder image, the same window for a tile of a large image).
"""
from __future__ import annotations

__all__ = ["HeldOutSet", "read_labels", "LABELS_FILE"]

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edgekit.images.image_set import CalibrationSet, Sample
from edgekit.errors import InputError
from edgekit.images import fit_mask, match_masks, read_mask

LABELS_FILE = "labels.csv"


def read_labels(path: Path, classes: tuple[str, ...] = ()) -> dict[str, int]:
    """``labels.csv`` as file name -> class index (names are looked up in ``classes``).

    Raises:
        InputError: an unreadable file, a row without two fields, or an unknown class name.
    """
    try:
        rows = [r for r in csv.reader(Path(path).read_text().splitlines()) if r and not r[0].startswith("#")]
    except OSError as exc:
        raise InputError(f"cannot read labels {path}: {exc}") from None
    if rows and rows[0][0].strip().lower() in ("file", "filename", "image", "path"):
        rows = rows[1:]
    labels = {}
    for i, row in enumerate(rows, 1):
        if len(row) < 2:
            raise InputError(f"{Path(path).name} row {i} has {len(row)} field(s); write file,class")
        name, value = Path(row[0].strip()).name, row[1].strip()
        if value.lstrip("-").isdigit():
            labels[name] = int(value)
        elif value in classes:
            labels[name] = classes.index(value)
        else:
            raise InputError(f"{Path(path).name} row {i}: class {value!r} is neither an index nor one of "
                             f"{', '.join(classes) or 'the model classes (none named)'}")
    return labels


@dataclass(frozen=True)
class HeldOutSet:
    """Held-out images and, optionally, a folder of label masks named like them.

    Attributes:
        images: the images, as a calibration set (its ``items``, batch and fit are used).
        masks: folder of label images (segmentation ground truth), or None.
        labels: a ``labels.csv`` of class ids (classification ground truth), or None.
        classes: the model's class names, for labels given by name.
    """

    images: CalibrationSet
    masks: Path | None = None
    labels: Path | None = None
    classes: tuple[str, ...] = ()

    @classmethod
    def beside(cls, images: CalibrationSet, masks: Path | None = None, classes: tuple[str, ...] = ()) -> "HeldOutSet":
        """``masks``, else the ``masks`` folder inside the image folder when there is one; and the
        folder's ``labels.csv`` when there is one."""
        folder = images.source if images.source.is_dir() else None
        if masks is None and folder is not None and (folder / "masks").is_dir():
            masks = folder / "masks"
        labels = folder / LABELS_FILE if folder is not None and (folder / LABELS_FILE).is_file() else None
        return cls(images, Path(masks) if masks is not None else None, labels, tuple(classes))

    def for_task(self, task: str) -> "HeldOutSet":
        """The truth that scores ``task``: masks for segmentation, labels for classification."""
        if task == "segmentation":
            return HeldOutSet(self.images, self.masks)
        return HeldOutSet(self.images, labels=self.labels, classes=self.classes)

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
        labels = self._labels() if self.labels is not None else None
        for b, inputs in enumerate(self.images.batches()):
            chunk = items[b * self.batch : (b + 1) * self.batch]
            if labels is not None:
                yield inputs, np.array([labels[s.path.name] for s in chunk], np.int64)
            else:
                yield inputs, (np.stack([self.mask(s) for s in chunk]) if self.masks is not None else None)

    def _labels(self) -> dict[str, int]:
        labels = read_labels(self.labels, self.classes)
        missing = sorted({s.path.name for s in self.items if s.window is not None or s.path.name not in labels})
        if missing:
            raise InputError(f"{self.labels} has no class for {', '.join(missing[:3])}"
                             f"{' ...' if len(missing) > 3 else ''} (one file,class row per image)")
        return labels

    def mask(self, sample: Sample) -> np.ndarray:
        """The labels of one item, cut like its pixels."""
        labels = read_mask(match_masks([sample.path], self.masks)[0])
        if sample.window is not None:
            row, col, h, w = sample.window
            return labels[row : row + h, col : col + w]
        return fit_mask(labels, self.images.input_size, self.images.fit)

    def key(self) -> dict:
        """What identifies this set's content (for caches)."""
        from edgekit.cache import sha256_file

        masks = [sha256_file(p) for p in match_masks(sorted({s.path for s in self.items}), self.masks)] if self.masks else []
        return {"images": [f"{s.name}:{sha256_file(s.path)}" for s in self.items], "masks": masks,
                "labels": sha256_file(self.labels) if self.labels else None,
                "shape": [self.batch, self.images.preprocess.channels, *self.images.input_size],
                "preprocess": self.images.preprocess.to_dict()}
