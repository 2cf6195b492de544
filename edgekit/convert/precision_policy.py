"""The precision stage's verb and policy: lower, verify on held-out images, fall back.

:func:`lower_precision` lowers a graph (:func:`edgekit.convert.precision.set_precision`), verifies
the result on held-out images against the input graph, and applies the stage's fallback policy
(ModelOpt's fp16 between Q/DQ failing verification: unquantized layers kept in fp32; an enforced int8
that still fails: :mod:`edgekit.convert.int8_search`), so `edgekit build` and `edgekit quantize`
behave the same. Its :class:`LoweredPrecision` records every attempt.

It sits above :mod:`edgekit.convert.precision` and :mod:`edgekit.convert.int8_search`, which
lowers through the former: imports run one way (precision <- int8_search <- precision_policy).
"""
from __future__ import annotations

__all__ = ["Attempt", "LoweredPrecision", "lower_precision"]

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from edgekit.convert.int8_search import Tried, hold_int8, nothing_held
from edgekit.convert.precision import PrecisionResult, PrecisionSpec, set_precision
from edgekit.images.image_set import CalibrationSet
from edgekit.errors import ParityError


@dataclass(frozen=True)
class Attempt:
    """One lowering the stage tried: its calibration, what stayed float, and how it verified.

    Attributes:
        calib_method: the calibration it used (int8).
        high_precision: what ModelOpt kept unquantized layers in.
        drop: points lost on the held-out images (None without them).
        passed: whether that is within the tolerance; None when nothing checked it (no held-out
            images): an unverified lowering, never recorded as passed.
        float_regions / float_nodes: regions (and their nodes) excluded from quantization.
    """

    calib_method: str
    high_precision: str
    drop: float | None
    passed: bool | None
    float_regions: tuple[str, ...] = ()
    float_nodes: tuple[str, ...] = ()
    weight_bits: int = 8

    def describe(self) -> str:
        where = f", {len(self.float_regions)} regions in float" if self.float_regions else ""
        drop = "unchecked" if self.drop is None else f"{self.drop:.2f}"
        bits = "/7-bit weights" if self.weight_bits == 7 else ""
        return f"{self.calib_method}/{self.high_precision}{bits}{where} ({drop})"


@dataclass(frozen=True)
class LoweredPrecision:
    """What :func:`lower_precision` kept, and what it tried on the way.

    Attributes:
        result: the lowering written to the output path.
        spec: the spec that produced it (after any fallback).
        check: verification on held-out images (``PrecisionCheck``), None without a held-out set.
        error: output error on one random input when there was no held-out set (else None).
        attempts: every lowering tried, in order; the kept one is ``attempts[kept]``.
        kept: index of the kept attempt (-1: the last).
        sensitivity: points each region lost lowered alone, when regions were kept in float.
    """

    result: PrecisionResult
    spec: PrecisionSpec
    check: object | None
    error: object | None
    attempts: tuple[Attempt, ...]
    kept: int = -1
    sensitivity: dict[str, float] = field(default_factory=dict)

    @property
    def fell_back(self) -> bool:
        return len(self.attempts) > 1

    @property
    def verified(self) -> bool:
        """Whether held-out images checked the kept lowering (False: only a random-input error)."""
        return self.check is not None

    @property
    def stayed_float(self) -> tuple[str, ...]:
        """Regions kept in float by the fallback (empty when the whole model was lowered)."""
        return self.attempts[self.kept].float_regions

    def to_dict(self) -> dict:
        kept = self.attempts[self.kept]
        return {**self.result.to_dict(), "high_precision": self.spec.high_precision,
                "calib_method": self.spec.calib_method, "verified": self.verified,
                "check": self.check.to_dict() if self.check is not None else None,
                "random_input_error": self.error.to_dict() if self.error is not None else None,
                "attempts": [asdict(a) for a in self.attempts],
                "stayed_float": {"regions": list(kept.float_regions), "nodes": list(kept.float_nodes)},
                "sensitivity": dict(self.sensitivity)}


def lower_precision(onnx_in: Path, onnx_out: Path, spec: PrecisionSpec, calib: CalibrationSet | None,
                    held_out, task: str, max_drop: float, enforce: bool = True,
                    progress: Callable[[str], None] | None = None) -> LoweredPrecision:
    """Lower ``onnx_in`` (:func:`set_precision`), verify it against ``onnx_in`` and fall back when it fails.

    Args:
        held_out: a :class:`~edgekit.evaluate.HeldOutSet` (or calibration set) of images calibration
            never saw; None: nothing is checked, the lowering is returned unverified (its attempt's
            ``passed`` is None) with the output error on one random input; the caller says so.
        task: ``segmentation`` or ``classification``.
        max_drop: points of the task metric the lowered model may lose.
        enforce: raise ParityError, removing ``onnx_out``, when nothing tried passes (False for
            random weights: the failing check is returned, and int8 is not searched).
        progress: called with a short message at each step.

    Policy: TensorRT int8 whose unquantized layers ModelOpt cast to fp16 (no range checks, some
    overflow) is redone with those layers in fp32 when it fails verification. An enforced int8
    that still fails tries the other calibration methods, then keeps the most sensitive regions
    in float (:mod:`edgekit.convert.int8_search`); the first attempt that holds is written.
    """
    from edgekit.convert.verify_precision import require

    say = progress or (lambda _msg: None)
    onnx_out = Path(onnx_out)
    if held_out is None:
        result = set_precision(onnx_in, onnx_out, spec, calib)
        return LoweredPrecision(result, spec, None, _random_input_error(onnx_in, onnx_out, spec),
                                (Attempt(spec.calib_method, spec.high_precision, None, None),))
    attempts: list[Attempt] = []

    def attempt(s: PrecisionSpec, path: Path, regions: tuple[str, ...] = (), nodes: tuple[str, ...] = (),
                lower: Callable | None = None):
        result = (lower or (lambda s_, p_: set_precision(onnx_in, p_, s_, calib)))(s, path)
        say("verify precision on held-out images")
        check = _verify(onnx_in, path, held_out, task, max_drop, s.runtime, s.precision)
        attempts.append(Attempt(s.calib_method, s.high_precision, check.drop, check.passed, regions, nodes, s.weight_bits))
        return Tried(s, result, check, regions, nodes, len(attempts) - 1)

    tried = attempt(spec, onnx_out)
    if not tried.check.passed and _can_fall_back(spec):
        say("fp16 between Q/DQ failed verification: retrying with fp32 there")
        tried = attempt(replace(spec, high_precision="fp32"), onnx_out)
    sensitivity: dict[str, float] = {}
    if not tried.check.passed and enforce and spec.precision == "int8":
        held = hold_int8(Path(onnx_in), onnx_out, tried, attempt, lambda s, path: set_precision(onnx_in, path, s, calib),
                         lambda path: _verify(onnx_in, path, held_out, task, max_drop, spec.runtime).drop,
                         say)
        tried, sensitivity = held.tried, held.sensitivity
    if enforce and not tried.check.passed:
        onnx_out.unlink(missing_ok=True)  # a model that failed its check is not left behind
        if spec.precision != "int8" or len(attempts) == 1:
            require(tried.check, onnx_out.name, spec.precision)
        raise ParityError(nothing_held(onnx_out.name, tried.check, attempts))
    return LoweredPrecision(tried.result, tried.spec, tried.check, None, tuple(attempts), tried.index, sensitivity)


def _verify(onnx_in: Path, onnx_out: Path, held_out, task: str, max_drop: float, runtime: str = "onnxruntime",
            precision: str = "fp32"):
    """The task's check: boxes (mAP against FP32's) for detection, labels for the other tasks, the
    lowered graph run on ``runtime`` in ``precision`` (bf16: OpenVINO's bfloat16)."""
    from edgekit.convert.verify_precision import verify_precision

    if task == "detection":
        from edgekit.convert.verify_detection import verify_detection

        return verify_detection(onnx_in, onnx_out, getattr(held_out, "images", held_out), max_drop,
                                runtime=runtime, precision=precision)
    return verify_precision(onnx_in, onnx_out, held_out, task, max_drop, raise_on_fail=False, runtime=runtime,
                            precision=precision)


def _can_fall_back(spec: PrecisionSpec) -> bool:
    return spec.flavor == "tensorrt" and spec.precision == "int8" and spec.high_precision == "fp16"


def _random_input_error(onnx_in: Path, onnx_out: Path, spec: PrecisionSpec | None = None):
    """The lowered graph against ``onnx_in`` on one seeded random input (bf16: run so on OpenVINO)."""
    import onnx

    from edgekit.convert.onnx_check import random_input, run_onnx
    from edgekit.runtime.open import cpu_runner
    from edgekit.metrics import output_error

    feed = random_input(onnx.load(str(onnx_in), load_external_data=False))
    if spec is None or spec.precision != "bf16":
        return output_error(run_onnx(onnx_in, feed), run_onnx(onnx_out, feed))
    with cpu_runner(onnx_out, runtime=spec.runtime, precision=spec.precision) as runner:
        got = next(iter(runner.infer({runner.input_specs()[0].name: feed}).values()))
    return output_error(run_onnx(onnx_in, feed), got)
