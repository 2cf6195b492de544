"""The one scorer: a candidate's labels against a reference's labels and, when known, the truth.

Segmentation labels are (H, W) or (N, H, W) class ids; classification labels (N,) class ids. The
task metric (:attr:`Score.metric`), in this order of preference: mIoU (segmentation) or top-1
(classification) against ground truth; else mIoU against the reference's labels (segmentation) or
top-1 agreement with them (classification), i.e. the reference taken as truth.
"""
from __future__ import annotations

__all__ = ["Score", "Scorer", "TASKS"]

from dataclasses import asdict, dataclass

import numpy as np

from edgekit.errors import ConfigError
from edgekit.metrics import confusion, miou_from_confusion

TASKS = ("segmentation", "classification")


@dataclass(frozen=True)
class Score:
    """One model's labels over a set.

    Attributes:
        task: ``segmentation`` or ``classification``.
        images: images scored.
        agreement: fraction of labels (pixels, or top-1 classes) equal to the reference's.
        miou_vs_reference: mIoU taking the reference's labels as truth (segmentation).
        miou: mIoU against ground truth (segmentation with masks).
        accuracy: pixel accuracy (segmentation) or top-1 (classification) against ground truth.
    """

    task: str
    images: int
    agreement: float
    miou_vs_reference: float | None = None
    miou: float | None = None
    accuracy: float | None = None

    @property
    def ground_truth(self) -> bool:
        return self.accuracy is not None

    @property
    def metric(self) -> float:
        """The task metric in [0, 1] (module docstring)."""
        if self.task == "segmentation":
            return self.miou if self.ground_truth else self.miou_vs_reference
        return self.accuracy if self.ground_truth else self.agreement

    @property
    def metric_name(self) -> str:
        if self.task == "segmentation":
            return "mIoU vs ground truth" if self.ground_truth else "mIoU vs reference"
        return "top-1 vs ground truth" if self.ground_truth else "top-1 agreement with reference"

    def to_dict(self) -> dict:
        return {**asdict(self), "metric": self.metric}


class Scorer:
    """Accumulates confusion matrices over batches or images (no labels are kept).

    Args:
        task: ``segmentation`` or ``classification``.
        classes: classes the model predicts.
        ignore: truth label that is not scored (None: every label is). Predictions outside
            ``0..classes-1`` (255: nodata) are not scored either.
    """

    def __init__(self, task: str, classes: int, ignore: int | None = 255):
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
        self.task, self.classes, self.ignore = task, int(classes), ignore
        self.images = 0
        self.vs_reference = np.zeros((self.classes, self.classes), np.int64)
        self.vs_truth: np.ndarray | None = None

    def add(self, reference: np.ndarray, labels: np.ndarray, truth: np.ndarray | None = None, images: int = 1) -> None:
        """Score ``labels`` against the ``reference``'s labels (and ``truth``) for ``images`` images."""
        reference, labels = np.asarray(reference), np.asarray(labels)
        if reference.shape != labels.shape:
            raise ValueError(f"label shapes differ: {reference.shape} vs {labels.shape}")
        self.images += images
        self.vs_reference += confusion(reference, labels, self.classes)
        if truth is not None:
            cm = confusion(truth, labels, self.classes, self.ignore)
            self.vs_truth = cm if self.vs_truth is None else self.vs_truth + cm

    def score(self) -> Score:
        seg = self.task == "segmentation"
        truth = self.vs_truth
        return Score(
            self.task, self.images, _accuracy(self.vs_reference),
            miou_from_confusion(self.vs_reference) if seg else None,
            miou_from_confusion(truth) if seg and truth is not None else None,
            _accuracy(truth) if truth is not None else None,
        )


def _accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")
