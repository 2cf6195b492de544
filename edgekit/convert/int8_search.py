"""Make an int8 lowering hold its held-out check, or find the best it can do.

Called by :func:`edgekit.convert.precision_policy.lower_precision` when an enforced int8 lowering fails
its check. In order, each step lowered, verified and recorded by the caller's ``attempt``:

1. the calibration methods not tried yet (onnxruntime flavor: entropy, percentile, max;
   tensorrt: entropy, max);
2. on a CPU without VNNI, the best of those with 7-bit weights
   (:func:`edgekit.convert.precision_spec.int8_weight_bits`: full-range weights can saturate the
   CPU runtimes' 16-bit pair sums there);
3. keeping the most sensitive regions in float, with `edgekit optimize`'s machinery
   (:mod:`edgekit.convert.mixed_precision`, :mod:`edgekit.convert.sensitivity`): one more calibration
   gives a Q/DQ graph of Conv/MatMul/Gemm (ModelOpt's graph as it is on TensorRT targets); each
   region is probed alone on a mixture cut from it, then mixtures with the ``k`` most sensitive
   regions in float, ``k`` = 1, 2, 3 ..., are verified until one holds (at most ``MAX_REGIONS``
   regions; a mixture that would keep every quantized node in float is not tried: it is the FP32
   graph under an int8 name, and a build that asked for int8 is told that nothing held instead).
   Mixtures share that one calibration.

The first attempt that holds wins; when none does, the one that lost least is returned (failing).
"""
from __future__ import annotations

__all__ = ["Tried", "Held", "hold_int8", "methods_to_try", "nothing_held", "MAX_REGIONS"]

import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from edgekit.convert.precision import PrecisionResult, PrecisionSpec
from edgekit.convert.precision_spec import int8_weight_bits

MAX_REGIONS = 8  # regions probed (one held-out run each), and most regions kept in float
ORT_ORDER = ("entropy", "percentile", "max")
TRT_ORDER = ("entropy", "max")


@dataclass(frozen=True)
class Tried:
    """One lowering written and verified.

    Attributes:
        spec: what it was lowered with.
        result: the file written.
        check: its held-out check (``PrecisionCheck``).
        float_regions: regions kept in float (names), empty for whole-model attempts.
        float_nodes: the quantizable nodes those regions hold.
        index: its place among the stage's recorded attempts.
    """

    spec: PrecisionSpec
    result: PrecisionResult
    check: object
    float_regions: tuple[str, ...] = ()
    float_nodes: tuple[str, ...] = ()
    index: int = -1


@dataclass(frozen=True)
class Held:
    """What :func:`hold_int8` found: the attempt kept, and each region's sensitivity (points)."""

    tried: Tried
    sensitivity: dict[str, float] = field(default_factory=dict)


Attempt = Callable[..., Tried]  # (spec, path, float regions, float nodes, lower=None) -> Tried
Lower = Callable[[PrecisionSpec, Path], PrecisionResult]
Score = Callable[[Path], float]


def methods_to_try(spec: PrecisionSpec, tried: set[str]) -> list[str]:
    """Calibration methods of ``spec``'s flavor not in ``tried``, in the order they are tried."""
    order = TRT_ORDER if spec.flavor == "tensorrt" else ORT_ORDER
    return [m for m in order if m not in tried]


def hold_int8(fp32: Path, out: Path, failed: Tried, attempt: Attempt, lower: Lower, score: Score,
              say: Callable[[str], None], max_regions: int = MAX_REGIONS) -> Held:
    """Try other calibrations, then float regions, until an attempt passes; write it to ``out``.

    Attempts are written in a scratch folder; only one that passes replaces ``out``.

    Args:
        fp32: the graph being lowered.
        out: where the lowering that holds goes.
        failed: the attempt that failed.
        attempt: lowers a spec to a path, verifies and records it (float regions and nodes named).
        lower: lowers a spec to a path without verifying (the sensitivity probe's base graph).
        score: points a graph loses on the held-out images (for the probes).
        say: progress messages.
        max_regions: most regions probed.
    """
    from edgekit.atomic import atomic_file

    with tempfile.TemporaryDirectory(prefix="edgekit-int8-") as scratch:
        held = _search(Path(fp32), failed, attempt, lower, score, Path(scratch), say, max_regions)
        tried = held.tried
        if tried.check.passed and tried.result.path != Path(out):
            with atomic_file(Path(out)) as tmp:
                shutil.copyfile(tried.result.path, tmp)
            tried = replace(tried, result=replace(tried.result, path=Path(out)))
    return replace(held, tried=tried)


def _search(fp32: Path, failed: Tried, attempt: Attempt, lower: Lower, score: Score, work: Path,
            say: Callable[[str], None], max_regions: int) -> Held:
    best = failed
    for method in methods_to_try(failed.spec, {failed.spec.calib_method}):
        say(f"int8 with {failed.spec.calib_method} calibration fails its check: trying {method}")
        tried = attempt(replace(failed.spec, calib_method=method), work / f"{method}.onnx", (), ())
        if tried.check.passed:
            return Held(tried)
        best = min(best, tried, key=lambda t: t.check.drop)
    if best.spec.weight_bits == 8 and int8_weight_bits(best.spec.flavor) == 7:
        say(f"int8 with {best.spec.calib_method} calibration fails its check: trying 7-bit weights (no VNNI on this CPU)")
        tried = attempt(replace(best.spec, weight_bits=7), work / f"{best.spec.calib_method}-7bit.onnx", (), ())
        if tried.check.passed:
            return Held(tried)
        best = min(best, tried, key=lambda t: t.check.drop)
    return _float_regions(fp32, best, attempt, lower, score, work, say, max_regions)


def nothing_held(name: str, check, attempts) -> str:
    """One line when no attempt held: the best figure reached and what was tried."""
    metric = "mIoU" if check.task == "segmentation" else "top-1 agreement"
    methods = ", ".join(dict.fromkeys(a.calib_method for a in attempts))
    regions = max((len(a.float_regions) for a in attempts), default=0)
    floats = (", then 7-bit weights" if any(a.weight_bits == 7 for a in attempts) else "") + \
        (f", then up to {regions} regions kept in float" if regions else "")
    return (f"{name}: no int8 lowering holds: the best loses {check.drop:.2f} points of {metric} "
            f"({check.drop_basis}) on {check.images} held-out images (tolerance {check.max_drop}) after "
            f"{len(attempts)} attempts (calibration {methods}{floats}); try fp16, more or more typical "
            "calibration images, or `edgekit optimize`")


def _float_regions(fp32: Path, best: Tried, attempt: Attempt, lower: Lower, score: Score, work: Path,
                   say: Callable[[str], None], max_regions: int) -> Held:
    """Keep the 1, 2, 3 ... most sensitive regions in float, until the check holds."""
    from edgekit.convert.mixed_precision import QUANTIZABLE_OPS, mixed_precision_model, quantized_nodes, regions_from_onnx
    from edgekit.convert.sensitivity import region_sensitivity

    made = _probe_graph(best, lower, work)
    base = made.path
    quantized = quantized_nodes(base)
    regions = regions_from_onnx(fp32, max_regions, only=quantized)
    if not regions:
        return Held(best)

    def probe_drop(float_nodes: frozenset, name: str) -> float:
        return score(mixed_precision_model(base, fp32, float_nodes, work / "probe-mixture.onnx"))

    sensitivity = region_sensitivity(regions, quantized, probe_drop, say)
    order = sorted(regions, key=lambda r: -sensitivity[r.name])
    spec = best.spec if best.spec.flavor == "tensorrt" else replace(best.spec, op_types=QUANTIZABLE_OPS)
    for k in range(1, len(order) + 1):
        kept = order[:k]
        nodes = tuple(n for r in kept for n in r.nodes)
        if quantized <= set(nodes):
            say(f"int8 with all {len(order)} regions in float would be fp32: not tried")
            break
        say(f"int8 with {k} of {len(order)} regions in float: {', '.join(r.name for r in kept)}")
        tried = attempt(spec, work / f"float-{k}.onnx", tuple(r.name for r in kept), nodes,
                        lambda s, path, nodes=nodes: _mixture(made, fp32, nodes, path))
        best = min(best, tried, key=lambda t: t.check.drop)
        if tried.check.passed:
            return Held(tried, sensitivity)
    return Held(best, sensitivity)


def _mixture(base: PrecisionResult, fp32: Path, nodes: tuple[str, ...], out: Path) -> PrecisionResult:
    """``base`` with ``nodes`` in float, as the precision stage's result (it shares base's calibration)."""
    from edgekit.convert.precision import describe_lowering
    from edgekit.convert.mixed_precision import mixed_precision_model

    return describe_lowering(fp32, mixed_precision_model(base.path, fp32, set(nodes), out), base.precision,
                             base.flavor, base.calib_samples, base.seconds)


def _probe_graph(best: Tried, lower: Lower, work: Path) -> PrecisionResult:
    """The Q/DQ graph regions are kept float in, by cutting mixtures from it: ModelOpt's own, or
    ORT's on Conv/MatMul/Gemm only. Excluding nodes from ORT's quantizer is not enough: ORT
    quantizes the float weights of a Conv between a DequantizeLinear and a QuantizeLinear itself
    when it loads the model, and its all-op graph folds a Relu into the range before it."""
    from edgekit.convert.mixed_precision import QUANTIZABLE_OPS

    spec = best.spec
    if spec.flavor == "tensorrt":
        return best.result
    return lower(replace(spec, op_types=QUANTIZABLE_OPS), work / "mixture-base.onnx")


def _patterns(flavor: str, nodes: tuple[str, ...]) -> tuple[str, ...]:
    """Node names as the quantizer takes them: ModelOpt matches regular expressions."""
    return tuple(f"{re.escape(n)}$" for n in nodes) if flavor == "tensorrt" else nodes
