"""What a TensorRT engine's runner allocates and does each batch: pure decisions, no TensorRT.

The runner (:mod:`edgekit.runtime.trt`) asks TensorRT for each I/O tensor's name, type and
shapes (the engine's, with -1 on a dynamic axis, and for inputs the optimization profile's min
and max; for outputs the shape at the profile's max inputs), and everything else is decided here:

- :func:`plan_buffers`: one device buffer and one pinned host staging buffer per tensor, sized
  once for the profile's largest shapes, so no batch allocates;
- :func:`run_shapes`: the input shapes of one batch, checked against the profile, with a batch
  below the profile's min padded up to it (DLA engines have min = max) and the rows to hand back;
- :class:`GraphSchedule`: whether a batch replays the captured CUDA graph, captures one, or runs
  without: a graph holds the shapes it was captured at, so it is captured once the context has run
  at a shape and dropped when the shapes change.
"""
from __future__ import annotations

__all__ = ["TensorSlot", "BufferPlan", "RunShapes", "plan_buffers", "run_shapes", "output_rows", "GraphSchedule", "nbytes"]

import math
from dataclasses import dataclass

import numpy as np

from edgekit.errors import ArtifactError, InputError


def nbytes(shape: tuple[int, ...], dtype: str) -> int:
    """Bytes of a dense tensor of ``shape`` and ``dtype``."""
    return math.prod(shape) * np.dtype(dtype).itemsize


@dataclass(frozen=True)
class TensorSlot:
    """One I/O tensor of an engine and the buffers it gets.

    Attributes:
        name / is_input / dtype: as the engine declares them (dtype: a NumPy name).
        shape: the engine's shape, -1 on a dynamic axis.
        min_shape / max_shape: inputs: the optimization profile's bounds (the shape itself when
            static); outputs: the shape at the profile's max inputs (``min_shape`` unused).
    """

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...]
    min_shape: tuple[int, ...]
    max_shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Bytes of its buffers (at least 1: CUDA allocates nothing for 0)."""
        return max(nbytes(self.max_shape, self.dtype), 1)

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)


@dataclass(frozen=True)
class BufferPlan:
    """The buffers of one engine and profile."""

    slots: tuple[TensorSlot, ...]

    @property
    def inputs(self) -> tuple[TensorSlot, ...]:
        return tuple(s for s in self.slots if s.is_input)

    @property
    def outputs(self) -> tuple[TensorSlot, ...]:
        return tuple(s for s in self.slots if not s.is_input)

    @property
    def static(self) -> bool:
        """Every shape fixed at build time: one shape for every batch."""
        return not any(s.dynamic for s in self.slots)

    @property
    def device_bytes(self) -> int:
        """Device memory of the I/O buffers (pinned host staging is the same again)."""
        return sum(s.nbytes for s in self.slots)

    def slot(self, name: str) -> TensorSlot:
        return next(s for s in self.slots if s.name == name)


@dataclass(frozen=True)
class RunShapes:
    """One batch as the engine runs it.

    Attributes:
        inputs: the shape each input is set to (the batch padded up to the profile's min).
        rows: rows the caller sent (outputs are cut back to them).
        padded: rows run (``rows`` or the profile's min batch).
    """

    inputs: dict[str, tuple[int, ...]]
    rows: int
    padded: int

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.inputs.items()))


def plan_buffers(slots: list[TensorSlot] | tuple[TensorSlot, ...]) -> BufferPlan:
    """Check what TensorRT reported and fix the buffers: every max shape known (a data-dependent
    output shape has none), profile bounds of the input's rank."""
    for s in slots:
        if len(s.max_shape) != len(s.shape) or any(d < 0 for d in s.max_shape):
            what = "input" if s.is_input else "output"
            raise ArtifactError(f"{what} {s.name!r} of the engine has no largest shape ({list(s.max_shape)}): outputs "
                                "whose shape depends on the data are not supported; export the model with fixed "
                                "output shapes")
        if s.is_input and (len(s.min_shape) != len(s.shape) or any(a > b for a, b in zip(s.min_shape, s.max_shape))):
            raise ArtifactError(f"input {s.name!r}: profile bounds {list(s.min_shape)}..{list(s.max_shape)} do not fit "
                                f"its shape {list(s.shape)}")
    return BufferPlan(tuple(slots))


def run_shapes(plan: BufferPlan, feed: dict[str, tuple[int, ...]]) -> RunShapes:
    """The shapes to run ``feed`` (input name -> array shape) at, or a one-line error naming the
    batches the engine takes."""
    rows = {name: shape[0] if shape else 1 for name, shape in feed.items()}
    batched = {s.name for s in plan.inputs if s.dynamic and s.shape and s.shape[0] < 0}
    counts = {rows[n] for n in batched}
    if len(counts) > 1:
        raise InputError(f"inputs {sorted(batched)} have different batches {sorted(counts)}: send one batch")
    shapes: dict[str, tuple[int, ...]] = {}
    padded = rows_sent = None
    for slot in plan.inputs:
        shape = tuple(int(d) for d in feed[slot.name])
        if len(shape) != len(slot.shape) or any(e >= 0 and e != d for e, d in zip(slot.shape, shape)):
            raise InputError(f"input {slot.name!r} must have shape {_show(slot.shape)}, got {list(shape)}")
        for axis, (d, lo, hi) in enumerate(zip(shape, slot.min_shape, slot.max_shape)):
            if d > hi or (d < lo and (axis != 0 or slot.name not in batched)):
                raise InputError(_outside(slot, axis, d))
        if slot.name in batched:
            rows_sent, padded = shape[0], max(shape[0], slot.min_shape[0])
            shape = (padded, *shape[1:])
        shapes[slot.name] = shape
    if rows_sent is None:  # a static engine: the batch is the first input's
        first = plan.inputs[0].shape if plan.inputs else ()
        rows_sent = padded = first[0] if first else 1
    return RunShapes(shapes, rows_sent, padded)


def output_rows(value: np.ndarray, run: RunShapes) -> np.ndarray:
    """An output cut back to the rows the caller sent, when the batch was padded."""
    if run.padded != run.rows and value.ndim and value.shape[0] == run.padded:
        return value[: run.rows]
    return value


@dataclass
class GraphSchedule:
    """When a runner gives the context new shapes, and whether a batch replays the CUDA graph,
    captures one, or runs without (``eager``).

    A graph holds the shapes it was captured at, so new shapes drop it; it is captured once the
    context has run at the shapes without one (TensorRT's first run at new shapes does work that a
    graph must not record); a failed capture turns graphs off for good.

    Attributes:
        enabled: graphs asked for, and not failed.
        shapes / ran_at / graph_at: the shapes (a :attr:`RunShapes.key`) the context is set to, last
            ran at without a graph, and the graph was captured at.
    """

    enabled: bool
    shapes: tuple | None = None
    ran_at: tuple | None = None
    graph_at: tuple | None = None

    def next(self, key: tuple) -> tuple[bool, str]:
        """(the context needs ``key``'s shapes set, dropping the graph; ``replay``, ``capture`` or ``eager``)."""
        reshape = key != self.shapes
        if reshape:
            self.shapes, self.graph_at = key, None
        if not self.enabled:
            return reshape, "eager"
        if self.graph_at == key:
            return reshape, "replay"
        return reshape, "capture" if self.ran_at == key else "eager"

    def record(self, key: tuple, step: str, ok: bool = True) -> None:
        """What happened: an eager run, or a capture that worked (``ok``) or failed (then run eagerly)."""
        if step == "capture" and ok:
            self.graph_at = key
        elif step == "capture":
            self.enabled, self.ran_at = False, key
        elif step == "eager":
            self.ran_at = key


def _show(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("N" if d < 0 else str(d) for d in shape) + "]"


def _outside(slot: TensorSlot, axis: int, value: int) -> str:
    lo, hi = slot.min_shape[axis], slot.max_shape[axis]
    if axis == 0:
        takes = f"batch {lo}" if lo == hi else f"batches {lo} to {hi}"
        return (f"this engine takes {takes} (its optimization profile), not {value}; use --batch {hi}, "
                "or compile for a target with a larger batch")
    return f"input {slot.name!r} axis {axis} must be {lo}..{hi}, got {value}"
