"""Prove a precision change: run the lowered ONNX and the FP32 ONNX side by side on held-out images.

Both run on ONNX Runtime's CPU provider, which runs the same fp16 and Q/DQ files TensorRT will
compile. Labels are scored by the one scorer (:mod:`edgekit.evaluate`): segmentation ((N, classes,
H, W) logits): pixel agreement and mIoU of the argmax masks against FP32's argmax, and with masks
both models' mIoU against them; classification ((N, classes)): top-1 agreement. A one-channel map
(a sigmoid's, or logits a sigmoid would read) is two classes, split where tiling's masks split it
(:func:`edgekit.convert.outputs.output_labels`: 0.5 on probabilities, 0 on logits); its argmax is
always 0 and would agree with anything.
"""
from __future__ import annotations

__all__ = ["PrecisionCheck", "verify_precision", "require", "failure_line", "resolution", "TASKS"]

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit.convert.outputs import output_finding, output_labels
from edgekit.errors import ConfigError, ParityError
from edgekit.images.held_out import HeldOutSet
from edgekit.images.image_set import CalibrationSet
from edgekit.scoring import TASKS, Scorer
from edgekit.metrics import OutputError
from edgekit.runtime.open import cpu_runner


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
    reference: Path, candidate: Path, images: CalibrationSet | HeldOutSet, task: str, max_drop: float,
    raise_on_fail: bool = True, masks: Path | None = None, runtime: str = "onnxruntime", precision: str = "fp32",
) -> PrecisionCheck:
    """Compare ``candidate`` with the FP32 ``reference`` on ``images`` (not seen by calibration).

    Args:
        reference: the FP32 ONNX the precision stage started from.
        candidate: the fp16 or int8 ONNX it wrote.
        images: held-out images, e.g. ``calib.held_out(16)`` or a validation folder, or a
            :class:`HeldOutSet` that brings its masks.
        task: ``segmentation`` or ``classification``.
        max_drop: points of the task metric the candidate may lose (a target's ``max_accuracy_drop``).
        raise_on_fail: raise ParityError past ``max_drop`` (else return the failing check).
        masks: folder of ground-truth label images named like ``images``' files (segmentation);
            the drop is then measured against them.
        runtime: the CPU runtime that runs ``candidate`` (``onnxruntime`` or ``openvino``, the
            target's); the reference runs on ONNX Runtime.
        precision: what ``candidate`` computes in (``bf16``: the FP32 graph in bfloat16, on OpenVINO).
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    if not isinstance(images, HeldOutSet):  # masks only when given; a classification folder's labels.csv always
        labels = HeldOutSet.beside(images).labels
        images = HeldOutSet(images, Path(masks) if masks else None, labels)
    held = images.for_task(task)
    errors, scores, probabilities = _Errors(), None, False
    with cpu_runner(reference) as ref, cpu_runner(candidate, runtime=runtime, precision=precision) as cand:
        name = ref.input_specs()[0].name
        for batch, truth in held.batches():
            r, c = _first(ref.infer({name: batch})), _first(cand.infer({name: batch}))
            errors.add(r, c)
            if scores is None:
                probabilities = _probabilities(reference, r)
                scores = (Scorer(task, max(r.shape[1], 2)), Scorer(task, max(r.shape[1], 2)))
            labels = output_labels(r, probabilities)
            scores[0].add(labels, labels, truth, len(batch))
            scores[1].add(labels, output_labels(c, probabilities), truth, len(batch))
    check = _check(task, errors.error(), *(s.score() for s in scores), max_drop)
    if raise_on_fail:
        require(check, Path(candidate).name)
    return check


METRICS = {"segmentation": "mIoU", "classification": "top-1 agreement", "detection": "mAP"}
NEXT_STEP = {  # what a user can change, by the precision that failed (never fp16's own advice to fp16)
    "int8": "try another --calib-method (entropy, max, percentile), more calibration images (--calib), "
            "--precision fp16, or `edgekit optimize`",
    "fp16": "keep it in float32 (--precision fp32), or let `edgekit optimize` choose the layers kept in float",
}


def require(check: PrecisionCheck, name: str, precision: str | None = None) -> PrecisionCheck:
    """Raise ParityError (:func:`failure_line`) when ``check`` did not pass; return it otherwise."""
    if not check.passed:
        raise ParityError(failure_line(check, name, precision))
    return check


def resolution(check: PrecisionCheck) -> float | None:
    """Points one image is worth, where whole images are scored (top-1: 100 / images); None for
    pixel-level scores."""
    return 100.0 / check.images if check.task == "classification" and check.images else None


def failure_line(check: PrecisionCheck, name: str, precision: str | None = None) -> str:
    """One line: the figure, then what the user can act on. Where one image is worth more than
    the tolerance the figure cannot tell a flip from a loss: more held-out images, or --no-verify;
    the lowering's own steps follow only when more than one image changed."""
    line = (f"{name} loses {check.drop:.2f} points of {METRICS.get(check.task, 'mIoU')} ({check.drop_basis}) on "
            f"{check.images} held-out images (tolerance {check.max_drop:g})")
    step = resolution(check)
    hint = NEXT_STEP.get(precision or "", "try another --precision, or `edgekit optimize`")
    if step is None or step <= check.max_drop:
        return f"{line}; {hint}"
    need = math.ceil(100.0 / check.max_drop - 1e-9) if check.max_drop > 0 else None
    coarse = (f"one image of {check.images} is {step:.2f} points, coarser than the tolerance: give "
              f"{f'at least {need}' if need else 'more'} held-out images with --val FOLDER, or accept the "
              "artifact with --no-verify")
    return f"{line}; {coarse}" if check.drop <= step + 1e-9 else f"{line}; {coarse}; beyond one image, {hint}"


def _check(task: str, error: OutputError, reference, candidate, max_drop: float) -> PrecisionCheck:
    """The drop from the two scores: against the truth when there is one, else against FP32's labels."""
    if not candidate.ground_truth:
        return PrecisionCheck(task, candidate.images, error, candidate.agreement, candidate.miou_vs_reference,
                              100.0 * (1.0 - candidate.metric), float(max_drop))
    return PrecisionCheck(task, candidate.images, error, candidate.agreement, candidate.miou_vs_reference,
                          100.0 * (reference.metric - candidate.metric), float(max_drop), "ground truth",
                          reference.metric, candidate.metric)


def _probabilities(reference: Path, output: np.ndarray) -> bool:
    """Whether the FP32 graph's output holds probabilities (:func:`~edgekit.convert.outputs.output_finding`:
    its graph, else its values on the first held-out batch)."""
    import onnx

    model = onnx.load(str(reference), load_external_data=False)
    return output_finding(model, [output], "held-out images", real=True).probabilities


def _first(outputs: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(next(iter(outputs.values())), np.float32)


class _Errors:
    """Running output error of the candidate against the reference (no outputs are kept)."""

    def __init__(self) -> None:
        self.max_abs = self.sum_abs = self.ref_max = 0.0
        self.count = 0

    def add(self, ref: np.ndarray, cand: np.ndarray) -> None:
        if ref.shape != cand.shape:
            raise ParityError(f"the lowered model's output shape {cand.shape} differs from FP32's {ref.shape}")
        diff = np.abs(ref.astype(np.float64) - cand)
        self.max_abs = max(self.max_abs, float(diff.max(initial=0.0)))
        self.sum_abs += float(diff.sum())
        self.count += diff.size
        self.ref_max = max(self.ref_max, float(np.abs(ref).max(initial=0.0)))

    def error(self) -> OutputError:
        return OutputError(self.max_abs, self.sum_abs / max(self.count, 1), self.max_abs / max(self.ref_max, 1e-12))
