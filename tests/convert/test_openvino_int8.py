"""int8 placed for OpenVINO (flavor ``openvino``): symmetric int8 on the tensors of Conv/MatMul/Gemm."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.convert.precision import PrecisionSpec, set_precision
from edgekit.images.image_set import CalibrationSet
from tests.convert.test_precision import PRE, SIZE, small_cnn_onnx, smooth_images

onnx = pytest.importorskip("onnx")


def placement(path: Path) -> tuple[set[str], set[str], bool, set[str]]:
    """(zero-point dtypes, op types a DequantizeLinear feeds, every zero point 0, op types whose
    output a QuantizeLinear reads)."""
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    zps = [inits[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    fed = {n.op_type for n in graph.node if any(i in dq for i in n.input)}
    made = {o: n.op_type for n in graph.node for o in n.output}
    quantized = {made.get(n.input[0], "input") for n in graph.node if n.op_type == "QuantizeLinear"}
    return {str(z.dtype) for z in zps}, fed, all(not z.any() for z in zps), quantized


def test_openvino_flavor_is_symmetric_int8_on_conv_matmul_gemm(tmp_path: Path):
    calib = CalibrationSet(smooth_images(tmp_path / "imgs", 8), (SIZE, SIZE), PRE, samples=8)
    fp32 = small_cnn_onnx(tmp_path / "m.onnx")
    ov = set_precision(fp32, tmp_path / "ov.onnx", PrecisionSpec("int8", flavor="openvino", calib_method="max"), calib)
    ort = set_precision(fp32, tmp_path / "ort.onnx", PrecisionSpec("int8", calib_method="max"), calib)
    dtypes, fed, zero, quantized = placement(ov.path)
    assert ov.flavor == "openvino" and ov.qdq_pairs > 0 and dtypes == {"int8"} and zero
    assert "Conv" in fed
    # only the inputs of int8 ops: the Relu outputs a Conv reads, never a Conv's own output (a
    # requantization OpenVINO cannot fold)
    assert "Conv" not in quantized and "Relu" in quantized
    dtypes, _, zero, quantized = placement(ort.path)  # control: ONNX Runtime's placement, U8S8 with zero points
    assert dtypes == {"uint8"} and not zero and "Conv" in quantized
    x = next(calib.batches())
    from edgekit.runtime.openvino_rt import OpenVINORunner, OpenVINOSettings

    pytest.importorskip("openvino")
    with OpenVINORunner(fp32, OpenVINOSettings()) as ref, OpenVINORunner(ov.path, OpenVINOSettings()) as got:
        r, g = ref.infer({"input": x}), got.infer({"input": x})
    key = next(iter(r))
    assert np.abs(r[key] - g[key]).max() <= 0.1 * np.abs(r[key]).max()
