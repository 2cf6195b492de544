"""Prove a precision change: run the lowered ONNX and the FP32 ONNX side by side on held-out images.

Both run on ONNX Runtime's CPU provider, which runs the same fp16 and Q/DQ files TensorRT will
compile. The task decides the agreement measured on the first output:
segmentation ((N, classes, H, W) logits): pixel agreement and mIoU of the argmax masks against
FP32's argmax; classification ((N, classes)): top-1 agreement.
"""
from __future__ import annotations

__all__ = ["PrecisionCheck", "verify_precision", "require", "TASKS"]

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit.convert.calibration import CalibrationSet
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
        drop: points lost on the task metric. With ground-truth masks: mIoU of FP32 minus mIoU of
            the candidate, both against the masks. Without: 100 x (1 - agreement metric), i.e. FP32's
            labels taken as truth (mIoU for segmentation, top-1 agreement otherwise), stricter.
        max_drop: the tolerance it was checked against, in points.
        drop_basis: ``ground truth`` or ``agreement with fp32``.
        miou_truth_reference / miou_truth: FP32's and the candidate's mIoU against the masks.
    """

    task: str
    images: int
    error: OutputError
    agreement: float
    miou: float | None
    drop: float
    max_drop: float
    drop_basis: str = "agreement with fp32"
    miou_truth_reference: float | None = None
    miou_truth: float | None = None

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop

    def to_dict(self) -> dict:
        return {**asdict(self), "error": self.error.to_dict(), "passed": self.passed}


def verify_precision(
    reference: Path, candidate: Path, images: CalibrationSet, task: str, max_drop: float, raise_on_fail: bool = True,
    masks: Path | None = None,
) -> PrecisionCheck:
    """Compare ``candidate`` with the FP32 ``reference`` on ``images`` (not seen by calibration).

    Args:
        reference: the FP32 ONNX the precision stage started from.
        candidate: the fp16 or int8 ONNX it wrote.
        images: held-out images, e.g. ``calib.held_out(16)`` or a validation folder.
        task: ``segmentation`` or ``classification``.
        max_drop: points of the task metric the candidate may lose (a target's ``max_accuracy_drop``).
        raise_on_fail: raise ParityError past ``max_drop`` (else return the failing check).
        masks: folder of ground-truth label images named like ``images``' files (segmentation);
            the drop is then measured against them.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    stats = _Stats()
    labels = _mask_batches(images, Path(masks)) if masks is not None and task == "segmentation" else None
    with _runner(reference) as ref, _runner(candidate) as cand:
        name = ref.input_specs()[0].name
        for batch in images.batches():
            stats.add(_first(ref.infer({name: batch})), _first(cand.infer({name: batch})),
                      next(labels) if labels is not None else None)
    check = stats.check(task, len(images.items), max_drop)
    if raise_on_fail:
        require(check, Path(candidate).name)
    return check


def require(check: PrecisionCheck, name: str) -> PrecisionCheck:
    """Raise ParityError when ``check`` did not pass; return it otherwise."""
    if not check.passed:
        metric = "mIoU" if check.task == "segmentation" else "top-1 agreement"
        raise ParityError(
            f"{name} loses {check.drop:.2f} points of {metric} ({check.drop_basis}) on "
            f"{check.images} held-out images (tolerance {check.max_drop}); try --calib-method max|percentile, "
            "more calibration images, nodes to exclude, fp16, or `edgekit optimize`"
        )
    return check


def _mask_batches(images: CalibrationSet, masks: Path):
    """Ground-truth labels batch by batch, cut like the images (same centre crop, no resizing)."""
    from PIL import Image

    h, w = images.input_size
    items = images.items
    for b in range(len(images)):
        batch = []
        for sample in items[b * images.batch : (b + 1) * images.batch]:
            path = masks / Path(sample.path.name).with_suffix(".png")
            if not path.is_file():
                raise ConfigError(f"no ground-truth mask {path} for {sample.path.name}")
            label = np.asarray(Image.open(path))
            lh, lw = label.shape[:2]
            cover = max(h / lh, w / lw)
            if images.fit == "resize" or cover > 1:  # the image was scaled: scale its labels alike (nearest)
                size = (max(w, round(lw * cover)), max(h, round(lh * cover)))
                label = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))
                lh, lw = label.shape[:2]
            top, left = (lh - h) // 2, (lw - w) // 2
            batch.append(label[top : top + h, left : left + w])
        yield np.stack(batch)


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
        self.truth: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, ref: np.ndarray, cand: np.ndarray, truth: np.ndarray | None = None) -> None:
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
        if truth is not None:
            pair = (confusion(truth, ref.argmax(1), classes), confusion(truth, cand.argmax(1), classes))
            self.truth = pair if self.truth is None else (self.truth[0] + pair[0], self.truth[1] + pair[1])

    def check(self, task: str, images: int, max_drop: float) -> PrecisionCheck:
        error = OutputError(self.max_abs, self.sum_abs / max(self.count, 1), self.max_abs / max(self.ref_max, 1e-12))
        agreement = float(np.trace(self.cm) / max(self.cm.sum(), 1))
        miou = float(np.nanmean(iou_from_confusion(self.cm))) if task == "segmentation" else None
        metric = miou if miou is not None else agreement
        if self.truth is None:
            return PrecisionCheck(task, images, error, agreement, miou, 100.0 * (1.0 - metric), float(max_drop))
        ref_truth, cand_truth = (float(np.nanmean(iou_from_confusion(cm))) for cm in self.truth)
        return PrecisionCheck(task, images, error, agreement, miou, 100.0 * (ref_truth - cand_truth), float(max_drop),
                              "ground truth", ref_truth, cand_truth)
