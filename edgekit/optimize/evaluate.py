"""Accuracy and latency of a candidate ONNX on the validation set, on ONNX Runtime's CPU provider.

The task metric, in this order of preference:
    * segmentation with masks (``<val>/masks/`` or ``masks=``): mIoU against the ground truth;
    * segmentation without masks: mIoU of the argmax masks against FP32's (agreement with FP32);
    * classification: top-1 agreement with FP32;
    * detection: COCO mAP@0.5 against FP32's boxes (scores >= 0.25), as the build's precision check.
A candidate's *drop* is the FP32 model's metric minus its own, in points (0-100 scale).
"""
from __future__ import annotations

__all__ = ["EXECUTIONS", "Accuracy", "Evaluator", "measure_latency", "measure_latencies"]

from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekit.errors import InputError
from edgekit.evaluate import Scorer, ValidationData
from edgekit.timing import interleaved_medians


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


EXECUTIONS = {"fp32": ("onnxruntime", "fp32"), "bf16": ("openvino", "bf16"), "openvino": ("openvino", "fp32")}
"""How a candidate runs, by name: (runtime, what it computes in). ``fp32``: its graph on ONNX
Runtime as written (Q/DQ and fp16 included); ``bf16``: the FP32 graph in bfloat16 on OpenVINO;
``openvino``: its graph (int8 placed for OpenVINO) on OpenVINO, float layers held to f32."""


def _session(path: Path, threads: int = 0, precision: str = "fp32"):
    """A CPU runner of ``path`` run as ``precision`` names it (:data:`EXECUTIONS`)."""
    from edgekit.runtime.open import cpu_runner

    runtime, computes = _execution(precision)
    return cpu_runner(path, threads, runtime, computes)


def _execution(name: str) -> tuple[str, str]:
    """(runtime, what it computes in) of a name in :data:`EXECUTIONS`; any other: its graph as
    written on ONNX Runtime."""
    return EXECUTIONS.get(name, ("onnxruntime", name))


def _outputs(path: Path, batches: list[np.ndarray], threads: int, precision: str = "fp32") -> list[np.ndarray]:
    with _session(path, threads, precision) as runner:
        name = runner.input_specs()[0].name
        return [np.asarray(next(iter(runner.infer({name: b}).values()))) for b in batches]


REFERENCE_CONF = 0.25  # FP32's boxes at or above this score are a detector's truth
SCORED_CONF = 0.001  # a candidate's boxes down to this score form its precision-recall curve


def _detections(path: Path, batches: list[np.ndarray], threads: int, conf: float, precision: str = "fp32") -> list:
    """Boxes per image of a detector's raw outputs, decoded as `edgekit infer` decodes a tile."""
    from edgekit.runtime.decode import decode, detect_format

    with _session(path, threads, precision) as runner:
        name, specs = runner.input_specs()[0].name, runner.output_specs()
        outputs = [runner.infer({name: b}) for b in batches]
    fmt = detect_format(specs, tuple(batches[0].shape[2:4]), outputs[0])  # shapes, else the values, as build
    return [d for b, o in zip(batches, outputs) for d in decode(o, specs, fmt, conf, tuple(b.shape[2:4]))]


class Evaluator:
    """Scores models against the FP32 reference's labels (computed once) and the masks, if any.

    Args:
        reference: the FP32 ONNX.
        data: validation batches.
        task: ``segmentation``, ``classification`` or ``detection``.
        threads: ONNX Runtime intra-op threads (0: one per core).
    """

    def __init__(self, reference: Path, data: ValidationData, task: str, threads: int = 0):
        if not data.batches:
            raise InputError(f"validation set {data.folder} gave no batches")
        self.data, self.task, self.threads = data, task, threads
        if task == "detection":
            self.reference_boxes = _detections(reference, data.batches, threads, REFERENCE_CONF)
            self.reference = Accuracy(1.0, 1.0, len(data.items))
            return
        self.reference_labels = [o.argmax(1) for o in _outputs(reference, data.batches, threads)]
        self.classes = _outputs(reference, data.batches[:1], threads)[0].shape[1]
        self.reference = self._score(self.reference_labels)

    @property
    def metric_name(self) -> str:
        if self.task == "detection":
            return "mAP@0.5 against FP32's boxes"
        if self.task != "segmentation":
            return "top-1 agreement with FP32"
        return "mIoU vs ground truth" if self.data.has_masks else "mIoU vs FP32 (no masks: agreement)"

    def accuracy(self, path: Path, precision: str = "fp32") -> Accuracy:
        """Run ``path`` (computing in ``precision``: bf16 on OpenVINO) on every batch and score it."""
        if self.task == "detection":
            from edgekit.scoring import coco_map

            boxes = _detections(path, self.data.batches, self.threads, SCORED_CONF, precision)
            sizes = [tuple(b.shape[2:4]) for b in self.data.batches for _ in range(len(b))]
            found = coco_map(self.reference_boxes, boxes, sizes)["map50"]
            found = 1.0 if np.isnan(found) else found  # FP32 found nothing on these images: nothing to lose
            return Accuracy(found, found, len(self.data.items))
        labels = [o.argmax(1) for o in _outputs(path, self.data.batches, self.threads, precision)]
        return self._score(labels)

    def drop(self, accuracy: Accuracy) -> float:
        """Points lost against FP32 on the task metric."""
        return 100.0 * (self.reference.metric - accuracy.metric)

    def _score(self, labels: list[np.ndarray]) -> Accuracy:
        scorer = Scorer(self.task, self.classes)
        truth = self.data.masks or [None] * len(labels)
        for ref, lab, t in zip(self.reference_labels, labels, truth):
            scorer.add(ref, lab, t, len(lab))
        score = scorer.score()
        return Accuracy(score.metric, score.agreement, len(self.data.items))


def measure_latencies(models: Sequence[tuple[Path, str]], feed: np.ndarray, runs: int = 5,
                      threads: int = 0) -> list[float]:
    """Median milliseconds of each ``(path, precision)`` on ``feed``, timed in turns (one warm-up
    each, then ``runs`` rounds of a, b, c, ...) through :func:`edgekit.timing.interleaved_medians`,
    as compress and the build's runtime choice time theirs: a shared machine's drifting load then
    falls on every candidate alike (timed one after another, figures drift 10-20 %). ONNX Runtime's
    runtime each ``precision`` names (:data:`EXECUTIONS`)."""
    with ExitStack() as stack:
        runners = [stack.enter_context(_session(path, threads, precision)) for path, precision in models]
        feeds = [{runner.input_specs()[0].name: feed} for runner in runners]
        # candidates on OpenVINO and on ONNX Runtime: each turn then two runs, the second timed
        settle = int(len({_execution(precision)[0] for _, precision in models}) > 1)
        return interleaved_medians([lambda r=r, f=f: r.infer(f) for r, f in zip(runners, feeds)], runs, settle)


def measure_latency(path: Path, feed: np.ndarray, runs: int = 5, threads: int = 0, precision: str = "fp32") -> float:
    """Median milliseconds of one model (:func:`measure_latencies` of one): a mixture the search
    asks for alone."""
    return measure_latencies([(path, precision)], feed, runs, threads)[0]
