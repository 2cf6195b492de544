"""The one scorer: a candidate's labels against a reference's labels and, when known, the truth.

Segmentation labels are (H, W) or (N, H, W) class ids; classification labels (N,) class ids. The
task metric (:attr:`Score.metric`), in this order of preference: mIoU (segmentation) or top-1
(classification) against ground truth; else mIoU against the reference's labels (segmentation) or
top-1 agreement with them (classification), i.e. the reference taken as truth. Detections are
scored by COCO mAP through pycocotools (:func:`coco_map`, not a metric of our own).

A base-layer module: build verification (convert) and the searches above it score here.
"""
from __future__ import annotations

__all__ = ["Score", "Scorer", "TASKS", "coco_map"]

import contextlib
import io
from dataclasses import asdict, dataclass

from typing import Sequence

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


def coco_map(truth: Sequence, predictions: Sequence,
             sizes: Sequence[tuple[int, int]] | None = None) -> dict[str, float]:
    """mAP@0.5 and mAP@0.5:0.95 (COCO, all areas, up to 1000 boxes per image) of ``predictions``.

    Args:
        truth: reference boxes per image (scores ignored); each image's boxes, scores and classes
            as :class:`edgekit.runtime.decode.Detections` holds them.
        predictions: detected boxes per image, with scores.
        sizes: (height, width) per image, for COCO's image records (default: the boxes' extent).
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ConfigError("COCO mAP needs pycocotools: pip install 'edgekit[detect]'") from None
    images, gts, dts = [], [], []
    classes = set()
    for i, (t, p) in enumerate(zip(truth, predictions), start=1):
        h, w = sizes[i - 1] if sizes else (int(max(t.boxes[:, 3].max(initial=1), 1)), int(max(t.boxes[:, 2].max(initial=1), 1)))
        images.append({"id": i, "height": int(h), "width": int(w)})
        for b, c in zip(t.boxes, t.classes):
            x, y, bw, bh = float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])
            gts.append({"id": len(gts) + 1, "image_id": i, "category_id": int(c) + 1, "bbox": [x, y, bw, bh],
                        "area": bw * bh, "iscrowd": 0})
            classes.add(int(c))
        for b, s, c in zip(p.boxes, p.scores, p.classes):
            dts.append({"image_id": i, "category_id": int(c) + 1, "score": float(s),
                        "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
            classes.add(int(c))
    if not gts:
        return {"map50": float("nan"), "map50_95": float("nan")}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": gts,
                        "categories": [{"id": c + 1, "name": str(c)} for c in sorted(classes)]}
        coco.createIndex()
        if not dts:
            return {"map50": 0.0, "map50_95": 0.0}
        res = coco.loadRes(dts)
        ev = COCOeval(coco, res, "bbox")
        ev.params.maxDets = [1, 100, 1000]
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return {"map50": float(ev.stats[1]), "map50_95": float(ev.stats[0])}
