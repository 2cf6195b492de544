"""Precision stage: decide fp32 / fp16 / int8 in the ONNX graph itself.

* ``fp16``: ModelOpt AutoCast; inputs and outputs stay float32, nodes whose values overflow fp16
  on the calibration images stay fp32.
* ``int8`` for TensorRT targets (flavor ``tensorrt``): ModelOpt ONNX PTQ, symmetric int8 Q/DQ
  (zero points 0) placed where TensorRT fuses them.
* ``int8`` for the cpu target (flavor ``onnxruntime``): ONNX Runtime's static quantizer in QDQ
  format, uint8 activations / int8 per-channel weights (U8S8), on every op type ORT quantizes:
  measured (bench/precision_cpu.py) faster than Conv/MatMul/Gemm only, whose float ops in between
  add a Q/DQ pair at every boundary (MobileOne-S1 2.0x vs 1.26x FP32's speed, FastViT-SA12+FPN
  0.96x vs 0.84x).
* ``int8`` for OpenVINO (flavor ``openvino``: ``--runtime openvino``, ``cpu-openvino``, and the
  ``cpu`` target's OpenVINO candidate): the same quantizer, symmetric int8 activations and weights
  (zero points 0) on Conv/MatMul/Gemm inputs only, the placement OpenVINO's int8 kernels run
  fastest and NNCF's own: on the demo model (AVX-512 VNNI EPYC) 2.10x OpenVINO's FP32 against
  1.88x for the U8S8 every-op graph, as fast as ``nncf.quantize``'s IR (2.10x, f32 pinned).
* ``bf16`` (cpu targets, on OpenVINO): the FP32 graph unchanged, computed in bfloat16 by OpenVINO's
  CPU plugin (``INFERENCE_PRECISION_HINT`` bf16) where the CPU has AVX-512 BF16 or AMX; verified,
  like fp16, by running it so on the held-out images. ONNX Runtime has no bf16 CPU kernels.

:func:`set_precision` writes one lowering, dispatched to :mod:`edgekit.convert.ort_int8` or
:mod:`edgekit.convert.modelopt_lowering` (the spec: :mod:`edgekit.convert.precision_spec`); the
stage's verb, which verifies it on held-out images and falls back, is
:func:`edgekit.convert.precision_policy.lower_precision`.

Calibration runs in bounded memory whatever the set's size: ONNX Runtime's calibrators are fed
``calib_chunk`` batches per pass (histograms and ranges are merged between passes), and ModelOpt's
patched calibrators collect one batch at a time from a reader that loads images lazily.
"""
from __future__ import annotations

__all__ = ["PrecisionSpec", "PrecisionResult", "set_precision", "describe_lowering", "PRECISIONS", "FLAVORS",
           "OPENVINO_OPS", "CALIB_METHODS"]

import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edgekit.atomic import atomic_file
from edgekit.convert.modelopt_lowering import FP16_CALIB_BATCHES, autocast_fp16, modelopt_int8
from edgekit.convert.ort_int8 import ort_int8
from edgekit.convert.precision_spec import CALIB_METHODS, FLAVORS, OPENVINO_OPS, PRECISIONS, PrecisionSpec
from edgekit.images.image_set import CalibrationSet
from edgekit.errors import CalibrationError


@dataclass(frozen=True)
class PrecisionResult:
    """What the precision stage wrote.

    Attributes:
        path: the lowered ONNX.
        nodes_before / nodes_after: node counts of the input and output graphs.
        qdq_pairs: QuantizeLinear nodes in the output (each feeds a DequantizeLinear).
        fp16_nodes: nodes that compute in float16 (Casts not counted).
        calib_samples: calibration images used (0 without calibration).
        seconds: wall time of the stage.
        calib_groups: passes over the calibration images (more than 1: split to fit memory).
    """

    path: Path
    precision: str
    flavor: str
    nodes_before: int
    nodes_after: int
    qdq_pairs: int
    fp16_nodes: int
    calib_samples: int
    seconds: float
    calib_groups: int = 0

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def set_precision(onnx_in: Path, onnx_out: Path, spec: PrecisionSpec, calib: CalibrationSet | None = None) -> PrecisionResult:
    """Write ``onnx_in`` at ``spec.precision`` to ``onnx_out``; inputs and outputs stay float32.

    Raises:
        CalibrationError: int8 without a calibration set, or one too small for ``calib_samples``.
    """
    start = time.perf_counter()
    onnx_in, onnx_out = Path(onnx_in), Path(onnx_out)
    used = calib.with_samples(spec.calib_samples) if calib is not None and spec.calib_samples else calib
    if spec.precision == "int8" and used is None:
        raise CalibrationError("int8 needs calibration images: pass --calib FOLDER (or one large image)")
    if used is not None and spec.precision != "fp32":
        len(used)  # fail early, with counts, when the set is too small
    groups = 0
    with atomic_file(onnx_out) as tmp:
        if spec.precision in ("fp32", "bf16"):  # bf16: the runtime computes the FP32 graph in bfloat16
            shutil.copyfile(onnx_in, tmp)
        elif spec.precision == "fp16":
            autocast_fp16(onnx_in, tmp, spec, used)
        elif spec.flavor == "tensorrt":
            modelopt_int8(onnx_in, tmp, spec, used)
        else:
            groups = ort_int8(onnx_in, tmp, spec, used)
    samples = 0 if used is None or spec.precision in ("fp32", "bf16") else len(used.items)
    if spec.precision == "fp16":
        samples = min(samples, FP16_CALIB_BATCHES * used.batch) if used is not None else 0
    result = describe_lowering(onnx_in, onnx_out, spec.precision, spec.flavor, samples, time.perf_counter() - start)
    return replace(result, calib_groups=groups)


def describe_lowering(onnx_in: Path, onnx_out: Path, precision: str, flavor: str, calib_samples: int = 0,
                      seconds: float = 0.0) -> PrecisionResult:
    """The counts of a lowering ``onnx_out`` of ``onnx_in`` (written here or cut from another)."""
    return PrecisionResult(
        Path(onnx_out), precision, flavor, _node_count(onnx_in), _node_count(onnx_out),
        _count(onnx_out, "QuantizeLinear"), _fp16_nodes(onnx_out), calib_samples, seconds,
    )


# ---- counts -----------------------------------------------------------------------------------
def _node_count(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def _count(path: Path, op_type: str) -> int:
    import onnx

    return sum(n.op_type == op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


def _fp16_nodes(path: Path) -> int:
    """Nodes (Casts aside) with a float16 output, after shape inference."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output]}
    fp16 = onnx.TensorProto.FLOAT16
    return sum(n.op_type != "Cast" and any(types.get(o) == fp16 for o in n.output) for n in graph.node)
