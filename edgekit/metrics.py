"""How close two outputs are, and how right a prediction is. NumPy only.

Used by every transform's proof (parity of outputs) and by the one scorer,
:mod:`edgekit.scoring` (agreement with the FP32 reference, accuracy against ground truth).
"""
from __future__ import annotations

__all__ = ["OutputError", "output_error", "confusion", "iou_from_confusion", "miou_from_confusion", "miou", "agreement"]

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class OutputError:
    """Element-wise difference of two float outputs.

    Attributes:
        max_abs: largest absolute difference.
        mean_abs: mean absolute difference.
        max_rel: largest difference relative to the reference's largest magnitude.
    """

    max_abs: float
    mean_abs: float
    max_rel: float

    def to_dict(self) -> dict:
        return asdict(self)


def output_error(reference: np.ndarray, candidate: np.ndarray) -> OutputError:
    """Compare ``candidate`` with ``reference`` (same shape) in float64."""
    ref = np.asarray(reference, np.float64)
    cand = np.asarray(candidate, np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"shapes differ: {ref.shape} vs {cand.shape}")
    diff = np.abs(ref - cand)
    scale = max(float(np.abs(ref).max(initial=0.0)), 1e-12)
    return OutputError(float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0, float(diff.max(initial=0.0)) / scale)


def confusion(truth: np.ndarray, pred: np.ndarray, classes: int, ignore: int | None = None) -> np.ndarray:
    """(classes, classes) int64 confusion matrix, rows truth, columns prediction.

    Pixels whose truth or prediction lies outside ``0..classes-1`` (255: nodata) are not counted.
    """
    t = np.asarray(truth).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    keep = (t >= 0) & (t < classes) & (p >= 0) & (p < classes)
    if ignore is not None:
        keep &= t != ignore
    return np.bincount(t[keep] * classes + p[keep], minlength=classes * classes).reshape(classes, classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU; NaN for a class absent from both truth and prediction."""
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def miou_from_confusion(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in truth or prediction, in [0, 1]; NaN when none is."""
    iou = iou_from_confusion(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def miou(truth: np.ndarray, pred: np.ndarray, classes: int) -> float:
    """Mean IoU over the classes present in truth or prediction, in [0, 1]."""
    return miou_from_confusion(confusion(truth, pred, classes))


def agreement(reference_labels: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of equal labels: pixel agreement for masks, top-1 agreement for class ids."""
    a, b = np.asarray(reference_labels), np.asarray(labels)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return float((a == b).mean()) if a.size else 1.0
