"""Prove a precision change: run the lowered ONNX and the FP32 ONNX side by side on held-out images.

Both run on ONNX Runtime's CPU provider, which runs the same fp16 and Q/DQ files TensorRT will
compile. The task decides the agreement measured on the first output:
segmentation ((N, classes, H, W) logits): pixel agreement and mIoU of the argmax masks against
FP32's argmax; classification ((N, classes)): top-1 agreement.
"""
from __future__ import annotations

__all__ = ["PrecisionCheck", "verify_precision", "TASKS"]

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit.build.calibration import CalibrationSet
from edgekit.errors import ConfigError, ParityError
from edgekit.metrics import OutputError, confusion, iou_from_confusion

TASKS = ("segmentation", "classification")


@dataclass(frozen=True)
class PrecisionCheck:
    """The lowered model against FP32 on held-out images.

    Attributes:
        task: ``segmentation`` or ``classification``.
        images: held-out images compared.
        error: output error of the first output over all images (max_abs, mean_abs, max_rel).
        agreement: fraction of equal argmax labels (pixels, or top-1 classes).
        miou: mean IoU of the argmax masks against FP32's (segmentation; None for classification).
        drop: points lost on the task metric (mIoU for segmentation, top-1 agreement otherwise).
        max_drop: the tolerance it was checked against, in points.
    """

    task: str
    images: int
    error: OutputError
    agreement: float
    miou: float | None
    drop: float
    max_drop: float

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop

    def to_dict(self) -> dict:
        return {**asdict(self), "error": self.error.to_dict(), "passed": self.passed}


def verify_precision(
    reference: Path, candidate: Path, images: CalibrationSet, task: str, max_drop: float, raise_on_fail: bool = True
) -> PrecisionCheck:
    """Compare ``candidate`` with the FP32 ``reference`` on ``images`` (not seen by calibration).

    Args:
        reference: the FP32 ONNX the precision stage started from.
        candidate: the fp16 or int8 ONNX it wrote.
        images: held-out images, e.g. ``calib.held_out(16)`` or a validation folder.
        task: ``segmentation`` or ``classification``.
        max_drop: points of the task metric the candidate may lose (a target's ``max_accuracy_drop``).
        raise_on_fail: raise ParityError past ``max_drop`` (else return the failing check).
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    stats = _Stats()
    with _runner(reference) as ref, _runner(candidate) as cand:
        name = ref.input_specs()[0].name
        for batch in images.batches():
            stats.add(_first(ref.infer({name: batch})), _first(cand.infer({name: batch})))
    check = stats.check(task, len(images.items), max_drop)
    if raise_on_fail and not check.passed:
        metric = "mIoU" if task == "segmentation" else "top-1 agreement"
        raise ParityError(
            f"{Path(candidate).name} loses {check.drop:.2f} points of {metric} against FP32 on "
            f"{check.images} held-out images (tolerance {max_drop}); try --calib-method max|percentile, "
            "more calibration images, nodes to exclude, or fp16"
        )
    return check


def _runner(path: Path):
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings

    return OnnxRuntimeRunner(path, SessionSettings(providers=("CPUExecutionProvider",)))


def _first(outputs: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(next(iter(outputs.values())), np.float32)


class _Stats:
    """Running output error and label confusion over batches (no outputs are kept)."""

    def __init__(self) -> None:
        self.max_abs = self.sum_abs = self.ref_max = 0.0
        self.count = 0
        self.cm: np.ndarray | None = None

    def add(self, ref: np.ndarray, cand: np.ndarray) -> None:
        if ref.shape != cand.shape:
            raise ParityError(f"the lowered model's output shape {cand.shape} differs from FP32's {ref.shape}")
        diff = np.abs(ref.astype(np.float64) - cand)
        self.max_abs = max(self.max_abs, float(diff.max(initial=0.0)))
        self.sum_abs += float(diff.sum())
        self.count += diff.size
        self.ref_max = max(self.ref_max, float(np.abs(ref).max(initial=0.0)))
        classes = ref.shape[1]
        cm = confusion(ref.argmax(1), cand.argmax(1), classes)
        self.cm = cm if self.cm is None else self.cm + cm

    def check(self, task: str, images: int, max_drop: float) -> PrecisionCheck:
        error = OutputError(self.max_abs, self.sum_abs / max(self.count, 1), self.max_abs / max(self.ref_max, 1e-12))
        agreement = float(np.trace(self.cm) / max(self.cm.sum(), 1))
        miou = float(np.nanmean(iou_from_confusion(self.cm))) if task == "segmentation" else None
        metric = miou if miou is not None else agreement
        return PrecisionCheck(task, images, error, agreement, miou, 100.0 * (1.0 - metric), float(max_drop))
