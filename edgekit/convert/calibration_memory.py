"""Calibration bounded in one image's activations, not only in the set's size.

ONNX Runtime's histogram calibrators (entropy, percentile) make every tensor they calibrate a
graph output: one run holds all of one image's intermediate activations (and copies them out),
and the calibrator keeps ``calib_chunk`` images' worth until it histograms them. For ViT-S/16 at
1024 (4096 tokens, six 4096x4096 attention maps a block) that is gigabytes per image.

:func:`plan_calibration` estimates those bytes from ONNX shape inference before anything runs:
``sum(calibrated tensor bytes of one image) x (calib_chunk + 1)``. Within the budget (default a
quarter of MemAvailable) calibration runs as before; past it, the tensors are split into groups
that fit and the calibration images run once per group (:func:`grouped_calibrator`): each tensor's
histogram sees exactly the data it saw before, so the ranges are the same, at the cost of one pass
per group. When even one tensor cannot fit, a CalibrationError says so with the estimate.

MinMax (``max``) returns only ReduceMin/ReduceMax results, but the reductions it appends to every
calibrated tensor keep those tensors alive until they run, so one pass holds about one image's
calibrated activations (``image_bytes x 1``): ViT-S/16 at 1024 was OOM-killed at 22.5 GB of RSS on a
24 GiB machine with ``max``. It is planned and split like the histogram methods, held once.
"""
from __future__ import annotations

__all__ = ["CalibrationPlan", "plan_calibration", "grouped_calibrator", "memory_budget", "BUDGET_FRACTION"]

import contextlib
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import CalibrationError

BUDGET_FRACTION = 0.25  # of MemAvailable, when no --calib-memory is given
HISTOGRAM_METHODS = ("entropy", "percentile")


@dataclass(frozen=True)
class CalibrationPlan:
    """How calibration will hold its activations.

    Attributes:
        image_bytes: bytes of the calibrated tensors of one image (batch included).
        peak_bytes: estimate of what one pass holds: ``image_bytes x (chunk + 1)``, ``x 1`` for ``max``.
        budget_bytes: the limit it was planned against.
        groups: tensor names calibrated per pass; one group (every tensor) when it fits.
    """

    image_bytes: int
    peak_bytes: int
    budget_bytes: int
    groups: tuple[tuple[str, ...], ...]

    @property
    def split(self) -> bool:
        return len(self.groups) > 1

    def to_dict(self) -> dict:
        return {"image_mb": self.image_bytes / 2**20, "peak_mb": self.peak_bytes / 2**20,
                "budget_mb": self.budget_bytes / 2**20, "groups": len(self.groups)}


def memory_budget(megabytes: float | None = None) -> int:
    """Bytes calibration may hold: ``megabytes`` when given, else a quarter of MemAvailable."""
    if megabytes is not None:
        if megabytes <= 0:
            raise CalibrationError(f"--calib-memory must be a positive number of MB, not {megabytes}")
        return int(megabytes * 2**20)
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(int(line.split()[1]) * 1024 * BUDGET_FRACTION)
    import os

    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") * BUDGET_FRACTION)


def calibrated_tensors(model: Path, op_types: list[str] | None) -> dict[str, int]:
    """The tensors ORT's calibrator would calibrate (its own selection rule), with their bytes, in graph order."""
    import numpy as np
    import onnx
    from onnxruntime.quantization.calibrate import CalibraterBase

    base = CalibraterBase(Path(model), op_types or _all_quantizable_ops())
    tensors, infos = base.select_tensors_to_calibrate(base.model)
    order: dict[str, int] = {}
    for n in base.model.graph.node:
        for t in (*n.input, *n.output):
            order.setdefault(t, len(order))
    sizes = {}
    for name in sorted(tensors, key=lambda t: order.get(t, len(order))):
        shape = infos[name].type.tensor_type.shape
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in shape.dim]
        item = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(infos[name].type.tensor_type.elem_type)).itemsize
        sizes[name] = int(np.prod(dims, dtype=np.int64)) * item
    return sizes


def _all_quantizable_ops() -> list[str]:
    """What quantize_static calibrates when no op types are given."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def plan_calibration(model: Path, op_types: list[str] | None, method: str, chunk: int,
                     budget_bytes: int) -> CalibrationPlan:
    """Group the calibrated tensors so that one pass fits ``budget_bytes``; refuse when one tensor cannot.

    Raises:
        CalibrationError: one tensor of one image, held ``chunk + 1`` times, exceeds the budget.
    """
    sizes = calibrated_tensors(model, op_types)
    image = sum(sizes.values())
    held = chunk + 1 if method in HISTOGRAM_METHODS else 1
    groups: list[list[str]] = [[]]
    used = 0
    for name, size in sizes.items():
        if size * held > budget_bytes:
            raise CalibrationError(
                f"{method} calibration needs {size * held / 2**20:.0f} MB for tensor {name!r} alone "
                f"({size / 2**20:.0f} MB an image, held {held} times; all tensors: {image * held / 2**20:.0f} MB), "
                f"over the {budget_bytes / 2**20:.0f} MB budget: raise --calib-memory"
                + (", use --calib-method max" if method in HISTOGRAM_METHODS else "") + ", or a smaller --input-size"
            )
        if groups[-1] and (used + size) * held > budget_bytes:
            groups.append([])
            used = 0
        groups[-1].append(name)
        used += size
    return CalibrationPlan(image, image * held, budget_bytes, tuple(tuple(g) for g in groups))


@contextlib.contextmanager
def grouped_calibrator(plan: CalibrationPlan, chunk: int):
    """Within it, ``quantize_static`` calibrates ``plan.groups`` one after another.

    ORT's ``quantize_static`` builds its calibrator with ``create_calibrator``; this swaps in one
    that, for each group, builds ORT's own calibrator restricted to the group's tensors, runs the
    reader over every chunk of images, keeps the group's ranges and frees it before the next group.
    Call ``quantize_static`` without ``CalibStridedMinMax`` (the chunks are walked here).
    """
    import importlib

    from onnxruntime.quantization import calibrate

    quantize = importlib.import_module("onnxruntime.quantization.quantize")  # the package's `quantize` is a function
    original = quantize.create_calibrator

    class Grouped:
        def __init__(self, *args, **kwargs) -> None:
            self.args, self.kwargs, self.ranges, self.method = args, kwargs, {}, None

        def collect_data(self, reader) -> None:
            total = len(reader)
            for group in plan.groups:
                with _only(calibrate.CalibraterBase, set(group)):
                    calibrator = original(*self.args, **self.kwargs)
                for start in range(0, total, chunk):
                    reader.set_range(start_index=start, end_index=start + chunk)
                    calibrator.collect_data(reader)
                data = calibrator.compute_data()
                self.method = data.calibration_method
                self.ranges.update({k: v for k, v in data.items() if k in group})
                del calibrator

        def compute_data(self):
            return calibrate.TensorsData(self.method, self.ranges)

    quantize.create_calibrator = Grouped
    try:
        yield
    finally:
        quantize.create_calibrator = original


@contextlib.contextmanager
def _only(cls, group: set[str]):
    """ORT's calibrators select only the tensors in ``group`` while inside."""
    select = cls.select_tensors_to_calibrate

    def selected(self, model):
        tensors, infos = select(self, model)
        return tensors & group, infos

    cls.select_tensors_to_calibrate = selected
    try:
        yield
    finally:
        cls.select_tensors_to_calibrate = select
