"""How a model's precision is lowered: :class:`PrecisionSpec`, checked when made, and its choices.

Below the lowerings (:mod:`edgekit.convert.ort_int8`, :mod:`edgekit.convert.modelopt_lowering`) and
the stage that dispatches to them (:mod:`edgekit.convert.precision`), which all read it.
"""
from __future__ import annotations

__all__ = ["PrecisionSpec", "PRECISIONS", "FLAVORS", "OPENVINO_OPS", "OPENVINO_CARRIED", "CALIB_METHODS",
           "LOWERING_REVISION", "int8_weight_bits", "SEVEN_BIT_WHY"]

from dataclasses import dataclass

from edgekit.artifact.manifest import PRECISIONS
from edgekit.errors import ConfigError

FLAVORS = ("tensorrt", "onnxruntime", "openvino")
OPENVINO_OPS = ("Conv", "MatMul", "Gemm")  # what the openvino flavor computes in int8 (inputs quantized, never outputs)
# what it carries in int8 between them, as NNCF places an Interpolate: input and output on one scale
# (but never a graph output: a model's own logits stay float)
OPENVINO_CARRIED = ("Resize",)
CALIB_METHODS = ("entropy", "max", "percentile")
# Raised whenever a lowering writes another graph from the same model, spec and images: caches of
# lowered graphs (optimize's candidates) are keyed by it. 2: the openvino flavor stopped quantizing
# Conv/MatMul/Gemm outputs and started carrying Resize in int8.
LOWERING_REVISION = 2
SEVEN_BIT_WHY = ("weights at 7 bits: 8-bit weights failed the check on this CPU without VNNI, whose int8 kernels "
                 "sum u8 x s8 products in pairs into 16 bits that full-range weights can saturate")


def int8_weight_bits(flavor: str) -> int:
    """The narrowest weights an int8 graph placed for ``flavor`` may need on this machine: 7 for a
    CPU runtime's flavor (``onnxruntime``, ``openvino``) where the CPU has no VNNI, else 8.

    Without VNNI, ONNX Runtime's and OpenVINO's int8 kernels multiply u8 activations by s8 weights
    with an instruction that adds each pair of products into a saturating 16-bit sum (255 x 127 x 2
    > 32767); with 7-bit weights it cannot overflow (ONNX Runtime's ``reduce_range``, NNCF's
    overflow fix), at half the weights' resolution. On an AVX2-only CPU a small CNN's symmetric int8
    ran 10.5 % of its output's range off FP32 on OpenVINO with 8-bit weights, 2.4 % with 7; a YOLOX
    detector held with 8 and lost 1.55 points with 7. So 8 bits come first, and the int8 search
    (:mod:`edgekit.convert.int8_search`) tries 7 where this returns it. TensorRT's GPUs have no such sum."""
    from edgekit.machine import cpu_vnni

    return 8 if flavor == "tensorrt" or cpu_vnni() else 7


@dataclass(frozen=True)
class PrecisionSpec:
    """How to lower a model's precision.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8``.
        flavor: the runtime the int8 graph is placed for, ``tensorrt``, ``onnxruntime`` or ``openvino``
            (the module docstring says how each places Q/DQ).
        calib_method: ``entropy``, ``max`` or ``percentile`` (percentile: onnxruntime flavor only).
        calib_samples: calibration images (or tiles) to use; None: all of the calibration set's.
        per_channel: per-channel weight scales (ModelOpt always uses them).
        nodes_to_exclude: node names (regular expressions for ModelOpt) kept in float.
        op_types: op types the onnxruntime flavor quantizes; None: all that ORT can.
        high_precision: ``fp16`` or ``fp32``, what ModelOpt leaves unquantized layers in.
        calib_chunk: batches per calibration pass; bounds calibration memory.
        calib_memory_mb: what one calibration pass may hold (onnxruntime flavor); None: a quarter
            of the memory available (:mod:`edgekit.convert.calibration_memory`).
        runtime: the CPU runtime the lowered graph is verified on (``onnxruntime`` or ``openvino``:
            the cpu target's backend, whose own int8 kernels round differently).
        weight_bits: 8, or 7 (weights in -64..63: a CPU without VNNI, :func:`int8_weight_bits`).
    """

    precision: str = "fp32"
    flavor: str = "onnxruntime"
    calib_method: str = "entropy"
    calib_samples: int | None = None
    per_channel: bool = True
    nodes_to_exclude: tuple[str, ...] = ()
    op_types: tuple[str, ...] | None = None
    high_precision: str = "fp16"
    calib_chunk: int = 4
    calib_memory_mb: float | None = None
    runtime: str = "onnxruntime"
    weight_bits: int = 8

    def __post_init__(self) -> None:
        if self.weight_bits not in (7, 8) or (self.weight_bits == 7 and self.flavor == "tensorrt"):
            raise ConfigError(f"int8 weights take 8 bits, or 7 on a cpu target (got {self.weight_bits} for {self.flavor})")
        for field, value, choices in (
            ("precision", self.precision, PRECISIONS),
            ("flavor", self.flavor, FLAVORS),
            ("calib_method", self.calib_method, CALIB_METHODS),
            ("high_precision", self.high_precision, ("fp16", "fp32")),
            ("runtime", self.runtime, ("onnxruntime", "openvino")),
        ):
            if value not in choices:
                raise ConfigError(f"unknown {field} {value!r}; choose one of: {', '.join(choices)}")
        if self.precision == "bf16" and self.runtime != "openvino":
            from edgekit.runtime.open import BF16_ON_ORT

            raise ConfigError(BF16_ON_ORT)
        if (self.calib_samples is not None and self.calib_samples < 1) or self.calib_chunk < 1:
            raise ConfigError("calibration needs at least 1 image (--calib-samples) and 1 batch per pass")
        if self.precision == "int8" and self.flavor == "tensorrt":
            if self.calib_method == "percentile":
                raise ConfigError("percentile calibration is for the cpu target; TensorRT targets take entropy or max")
            if not self.per_channel:
                raise ConfigError("TensorRT targets quantize weights per channel (ModelOpt); drop --no-per-channel")
