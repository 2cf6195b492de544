"""int8 by ONNX Runtime's static quantizer (QDQ), for the cpu target's runtimes: flavor
``onnxruntime`` (U8S8 on every op ORT quantizes) and ``openvino`` (symmetric S8S8 on the inputs of
:data:`~edgekit.convert.precision_spec.OPENVINO_OPS`, carried through
:data:`~edgekit.convert.precision_spec.OPENVINO_CARRIED`); see :mod:`edgekit.convert.precision`."""
from __future__ import annotations

__all__ = ["ort_int8", "ort_calib_options"]

import contextlib
import tempfile
from pathlib import Path

from edgekit.convert.calibration_reader import calibration_reader, image_input_name
from edgekit.convert.chatter import quiet
from edgekit.convert.initializers import unshared_initializers
from edgekit.convert.precision_spec import OPENVINO_CARRIED, OPENVINO_OPS, PrecisionSpec
from edgekit.images.image_set import CalibrationSet


def ort_int8(onnx_in: Path, out: Path, spec: PrecisionSpec, calib: CalibrationSet) -> int:
    """ONNX Runtime static quantization, QDQ U8S8 (flavor ``openvino``: symmetric S8S8 on the inputs
    of :data:`OPENVINO_OPS`, carried through :data:`OPENVINO_CARRIED`), calibrated ``calib_chunk`` batches per pass, in groups of tensors when one
    image's activations exceed the memory budget. Returns the groups."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgekit.convert.calibration_memory import grouped_calibrator, memory_budget, plan_calibration

    method = {"entropy": CalibrationMethod.Entropy, "max": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    openvino = spec.flavor == "openvino"
    op_types = list(spec.op_types) if spec.op_types else (list(OPENVINO_OPS + OPENVINO_CARRIED) if openvino else None)
    plan = plan_calibration(onnx_in, op_types, spec.calib_method, spec.calib_chunk, memory_budget(spec.calib_memory_mb))
    options = ort_calib_options(spec)
    grouped = contextlib.nullcontext()
    if plan.split:
        options.pop("CalibStridedMinMax")
        grouped = grouped_calibrator(plan, spec.calib_chunk)
    with quiet(), grouped, tempfile.TemporaryDirectory(prefix="edgekit-int8-") as work:
        source = unshared_initializers(onnx_in, Path(work) / "unshared.onnx")
        kept_float = _writing_outputs(source, OPENVINO_CARRIED) if openvino else []
        quantize_static(
            str(source), str(out), calibration_reader(calib, image_input_name(onnx_in), spec.calib_chunk),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            per_channel=spec.per_channel,
            reduce_range=spec.weight_bits == 7,
            activation_type=QuantType.QInt8 if openvino else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(spec.nodes_to_exclude) + kept_float,
            calibrate_method=method[spec.calib_method],
            calibration_providers=["CPUExecutionProvider"],
            extra_options=options,
        )
    return len(plan.groups)


def ort_calib_options(spec: PrecisionSpec) -> dict:
    """One collect_data per chunk (despite its name, CalibStridedMinMax works for any method).

    ORT's MinMax calibrator merges ranges at the end of every collect_data; its
    CalibMaxIntermediateOutputs would clear a full chunk *before* merging it (ORT 1.24 drops that
    data and then fails with "No data is collected"), so only the histogram methods get it.
    """
    options = {"CalibStridedMinMax": spec.calib_chunk}
    if spec.calib_method != "max":
        options["CalibMaxIntermediateOutputs"] = spec.calib_chunk
    if spec.flavor == "openvino":
        # zero points 0: OpenVINO's int8 kernels need no compensation. Only the inputs of the ops
        # that compute in int8 are quantized, as OpenVINO's own placement (NNCF) does: a quantized
        # Conv output is one more requantization OpenVINO cannot fold (0.96x NNCF's speed on the demo)
        # ForceQuantizeNoInputCheck: a carried op's input is quantized even where its producer's
        # output is not (a Relu before an upsampling)
        options |= {"ActivationSymmetric": True, "WeightSymmetric": True, "ForceQuantizeNoInputCheck": True,
                    "OpTypesToExcludeOutputQuantization": list(spec.op_types or OPENVINO_OPS)}
    return options


def _writing_outputs(model: Path, op_types: tuple[str, ...]) -> list[str]:
    """The nodes of ``op_types`` that write a graph output (a carried op there would quantize the
    model's own result)."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    return [n.name for n in graph.node if n.op_type in op_types and any(o in outputs for o in n.output)]
