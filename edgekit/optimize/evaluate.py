"""Accuracy and latency of a candidate ONNX on the validation set, on ONNX Runtime's CPU provider.

The task metric, in this order of preference:
    * segmentation with masks (``<val>/masks/`` or ``masks=``): mIoU against the ground truth;
    * segmentation without masks: mIoU of the argmax masks against FP32's (agreement with FP32);
    * classification: top-1 agreement with FP32.
A candidate's *drop* is the FP32 model's metric minus its own, in points (0-100 scale).
"""
from __future__ import annotations

__all__ = ["ValidationData", "Accuracy", "Evaluator", "measure_latency"]

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit.convert.calibration import CalibrationSet
from edgekit.errors import InputError
from edgekit.metrics import confusion, iou_from_confusion
from edgekit.preprocess import Preprocess


@dataclass(frozen=True)
class Accuracy:
    """One model on the validation set.

    Attributes:
        metric: the task metric in [0, 1] (see the module docstring).
        agreement: fraction of argmax labels equal to FP32's.
        images: images scored.
    """

    metric: float
    agreement: float
    images: int

    def to_dict(self) -> dict:
        return asdict(self)


class ValidationData:
    """Validation images as model-input batches (held in memory: keep the set small), with masks.

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
        self.items = images.items
        self.batches = list(images.batches())
        mask_dir = Path(masks) if masks else self.folder / "masks"
        self.mask_files = _mask_files(self.items, mask_dir) if ground_truth and mask_dir.is_dir() else None
        self.masks = _masks(self.mask_files, input_size, batch) if self.mask_files else None

    @property
    def has_masks(self) -> bool:
        return self.masks is not None

    def key(self) -> dict:
        """What identifies this set's content (for caches)."""
        from edgekit.artifact.manifest import sha256_file

        return {"images": [f"{s.name}:{sha256_file(s.path)}" for s in self.items],
                "masks": [sha256_file(p) for p in self.mask_files or ()],
                "shape": list(self.batches[0].shape) if self.batches else []}


def _mask_files(items, folder: Path) -> list[Path]:
    from edgekit.profile.images import match_masks

    return match_masks([s.path for s in items], folder)


def _masks(files: list[Path], size: tuple[int, int], batch: int) -> list[np.ndarray]:
    from edgekit.profile.images import read_mask

    masks = [_fit_mask(read_mask(f), size) for f in files]
    return [np.stack(masks[i : i + batch]) for i in range(0, len(masks), batch)]


def _fit_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The mask cut like its image (centre crop; nearest-neighbour enlargement when smaller)."""
    h, w = size
    mh, mw = mask.shape
    scale = max(h / mh, w / mw)
    if scale > 1:
        rows = np.minimum((np.arange(round(mh * scale)) / scale).astype(int), mh - 1)
        cols = np.minimum((np.arange(round(mw * scale)) / scale).astype(int), mw - 1)
        mask = mask[rows][:, cols]
        mh, mw = mask.shape
    top, left = (mh - h) // 2, (mw - w) // 2
    return mask[top : top + h, left : left + w]


def _session(path: Path, threads: int = 0):
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings

    return OnnxRuntimeRunner(path, SessionSettings(threads, "all", ("CPUExecutionProvider",)))


def _outputs(path: Path, batches: list[np.ndarray], threads: int) -> list[np.ndarray]:
    with _session(path, threads) as runner:
        name = runner.input_specs()[0].name
        return [np.asarray(next(iter(runner.infer({name: b}).values()))) for b in batches]


class Evaluator:
    """Scores models against the FP32 reference's labels (computed once) and the masks, if any.

    Args:
        reference: the FP32 ONNX.
        data: validation batches.
        task: ``segmentation`` or ``classification``.
        threads: ONNX Runtime intra-op threads (0: one per core).
    """

    def __init__(self, reference: Path, data: ValidationData, task: str, threads: int = 0):
        if not data.batches:
            raise InputError(f"validation set {data.folder} gave no batches")
        self.data, self.task, self.threads = data, task, threads
        self.reference_labels = [o.argmax(1) for o in _outputs(reference, data.batches, threads)]
        self.classes = _outputs(reference, data.batches[:1], threads)[0].shape[1]
        self.reference = self._score(self.reference_labels)

    @property
    def metric_name(self) -> str:
        if self.task != "segmentation":
            return "top-1 agreement with FP32"
        return "mIoU vs ground truth" if self.data.has_masks else "mIoU vs FP32 (no masks: agreement)"

    def accuracy(self, path: Path) -> Accuracy:
        """Run ``path`` on every batch and score it."""
        labels = [o.argmax(1) for o in _outputs(path, self.data.batches, self.threads)]
        return self._score(labels)

    def drop(self, accuracy: Accuracy) -> float:
        """Points lost against FP32 on the task metric."""
        return 100.0 * (self.reference.metric - accuracy.metric)

    def _score(self, labels: list[np.ndarray]) -> Accuracy:
        agree = float(np.mean([np.mean(a == b) for a, b in zip(labels, self.reference_labels)]))
        if self.task != "segmentation":
            return Accuracy(agree, agree, len(self.data.items))
        truth = self.data.masks if self.data.has_masks else self.reference_labels
        cm = sum(confusion(t, p, self.classes) for t, p in zip(truth, labels))
        return Accuracy(float(np.nanmean(iou_from_confusion(cm))), agree, len(self.data.items))


def measure_latency(path: Path, feed: np.ndarray, runs: int = 5, threads: int = 0) -> float:
    """Median milliseconds of ``runs`` ONNX Runtime runs of ``path`` on ``feed`` after one warm-up."""
    with _session(path, threads) as runner:
        name = runner.input_specs()[0].name
        runner.infer({name: feed})
        times = []
        for _ in range(max(runs, 1)):
            start = time.perf_counter()
            runner.infer({name: feed})
            times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))
