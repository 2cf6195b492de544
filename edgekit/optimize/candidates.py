"""Whole-model candidates: fp32, fp16, static int8 per calibration method, dynamic int8, bf16.

Mixtures (static int8 with some nodes kept in float) are cut from the static int8 graphs by
``edgekit.convert.mixed_precision.mixed_precision_model``; the search decides which.

* ``fp16``: ModelOpt AutoCast (the precision stage's fp16).
* ``int8-<method>``: the precision stage's static int8, per-channel weights, for the target's
  flavor (ONNX Runtime U8S8 Q/DQ on the cpu target, ModelOpt symmetric Q/DQ for TensorRT).
* ``int8-<method>-all`` (cpu target): ONNX Runtime's static int8 of every op type it quantizes, as
  ``edgekit build --precision int8`` makes it; often the fastest on the CPU, but no mixture is cut
  from it (removing a node's Q/DQ pair there could drop an op folded into a quantized range).
* ``dynamic``: ONNX Runtime's dynamic quantization of MatMul / Gemm (weights int8, activations
  quantized at run time), cpu target only: what ViT compression studies found best on CPUs.
* ``int8-openvino`` (cpu target, where OpenVINO is installed): the int8 `edgekit build` places for
  OpenVINO (symmetric S8S8 Q/DQ, the precision stage's ``openvino`` flavor), measured (accuracy and
  latency) on OpenVINO, as the build's runtime choice would run it. On CPUs where ONNX Runtime's
  int8 is no faster than its FP32 (an AMD EPYC: 96 against 69 ms) this is the int8 that is.
* ``bf16`` (cpu target, where the CPU has AVX-512 BF16 or AMX and OpenVINO is installed): the FP32
  graph computed in bfloat16 by OpenVINO, measured (accuracy and latency) on OpenVINO so.
"""
from __future__ import annotations

__all__ = ["CandidateSpec", "candidate_specs", "make_candidate", "bf16_here", "KINDS"]

import shutil
from dataclasses import dataclass
from pathlib import Path

from edgekit.images.image_set import CalibrationSet
from edgekit.convert.precision import PrecisionSpec, set_precision
from edgekit.errors import ConfigError
from edgekit.convert.mixed_precision import QUANTIZABLE_OPS
from edgekit.runtime.openvino_rt import openvino_version
from edgekit.targets import Target

KINDS = ("fp16", "int8", "dynamic", "bf16")
ORT_METHODS = ("max", "entropy", "percentile")
TRT_METHODS = ("max", "entropy")


@dataclass(frozen=True)
class CandidateSpec:
    """One whole-model candidate: ``kind`` (fp32, fp16, int8, dynamic, bf16) and, for int8, ``method``."""

    kind: str
    method: str | None = None
    all_ops: bool = False
    openvino: bool = False  # int8: placed for OpenVINO and run on it

    @property
    def name(self) -> str:
        if self.kind != "int8":
            return self.kind
        if self.openvino:
            return "int8-openvino"
        return f"int8-{self.method}-all" if self.all_ops else f"int8-{self.method}"

    @property
    def mixable(self) -> bool:
        """Whether mixtures can be cut from its graph: static int8 of Conv/MatMul/Gemm (not every op
        type's, not OpenVINO's placement; see :func:`make_candidate`)."""
        return self.kind == "int8" and not self.all_ops and not self.openvino

    @property
    def precision(self) -> str:
        """How the candidate runs (:data:`edgekit.optimize.evaluate.EXECUTIONS`): ``bf16`` and
        ``openvino`` on OpenVINO, else its graph as written on ONNX Runtime."""
        return "bf16" if self.kind == "bf16" else "openvino" if self.openvino else "fp32"


def bf16_here() -> str:
    """Why bf16 cannot be measured here ("" when it can): OpenVINO computes it, on a CPU with AVX-512 BF16 or AMX."""
    from edgekit.machine import cpu_bf16, cpu_name
    from edgekit.runtime.openvino_rt import openvino_version

    if not cpu_bf16():
        return f"this CPU ({cpu_name()}) has neither AVX-512 BF16 nor AMX"
    return "" if openvino_version() else "OpenVINO is not installed (pip install 'edgekit[openvino]')"


def candidate_specs(target: Target, kinds: tuple[str, ...], methods: tuple[str, ...] | None) -> list[CandidateSpec]:
    """The candidates to measure on ``target``: fp32 always, then ``kinds`` where they apply."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ConfigError(f"unknown candidate kind {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
    allowed = TRT_METHODS if target.is_tensorrt else ORT_METHODS
    methods = tuple(methods or allowed)
    bad = [m for m in methods if m not in allowed]
    if bad:
        raise ConfigError(f"calibration method {bad[0]!r} is not for {target.name}; choose from {', '.join(allowed)}")
    specs = [CandidateSpec("fp32")]
    if "fp16" in kinds:
        specs.append(CandidateSpec("fp16"))
    if "int8" in kinds:
        specs += [CandidateSpec("int8", m) for m in methods]
        if not target.is_tensorrt:  # plain `build --precision int8`: every op type, no mixtures cut from it
            specs.append(CandidateSpec("int8", methods[0], all_ops=True))
            if openvino_version():  # and the int8 the build places for OpenVINO, run there
                specs.append(CandidateSpec("int8", methods[0], openvino=True))
    if "dynamic" in kinds and not target.is_tensorrt:
        specs.append(CandidateSpec("dynamic"))
    if "bf16" in kinds and not target.is_tensorrt and not bf16_here():
        specs.append(CandidateSpec("bf16"))
    return specs


def make_candidate(spec: CandidateSpec, fp32: Path, out: Path, target: Target, calib: CalibrationSet | None,
                   calib_samples: int | None) -> Path | None:
    """Write ``spec``'s graph of ``fp32`` to ``out``; None when it does not apply to this model."""
    flavor = "tensorrt" if target.is_tensorrt else "openvino" if spec.openvino else "onnxruntime"
    if spec.kind == "fp32":
        return Path(fp32)
    if spec.kind == "dynamic":
        return _dynamic_int8(fp32, out)
    if spec.kind == "bf16":  # the FP32 graph: OpenVINO computes it in bfloat16
        shutil.copyfile(fp32, out)
        return Path(out)
    # Q/DQ on Conv / MatMul / Gemm only: mixtures bypass a node's Q/DQ pairs, which is exact only
    # where no other op (e.g. a Relu folded into a Q range) was quantized
    op_types = QUANTIZABLE_OPS if flavor == "onnxruntime" and not spec.all_ops else None
    precision = PrecisionSpec(spec.kind, flavor=flavor, calib_method=spec.method or "max", calib_samples=calib_samples,
                              op_types=op_types)
    set_precision(fp32, out, precision, calib)
    return Path(out)


def _dynamic_int8(fp32: Path, out: Path) -> Path | None:
    """ONNX Runtime dynamic int8 of MatMul / Gemm with constant weights; None when there are none."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgekit.convert.chatter import quiet

    graph = onnx.load(str(fp32), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    if not any(n.op_type in ("MatMul", "Gemm") and any(i in inits for i in n.input) for n in graph.node):
        return None
    with quiet():
        quantize_dynamic(str(fp32), str(out), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8,
                         per_channel=False)
    return Path(out)
