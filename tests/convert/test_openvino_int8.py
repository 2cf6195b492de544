"""int8 placed for OpenVINO (flavor ``openvino``): symmetric int8 on the tensors of Conv/MatMul/Gemm."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.convert.precision import PrecisionSpec, set_precision
from edgekit.convert.precision_spec import int8_weight_bits
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
    # on a CPU without VNNI, the 7-bit weights the int8 search tries there: 8-bit ones saturate
    # OpenVINO's 16-bit pair sums (10.5 % of the range off on an AVX2-only EPYC, 2.4 % with 7 bits)
    bits = int8_weight_bits("openvino")
    ov = set_precision(fp32, tmp_path / "ov.onnx", PrecisionSpec("int8", flavor="openvino", calib_method="max",
                                                                 weight_bits=bits), calib)
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


def upsampling_onnx(path: Path) -> Path:
    """Conv-ReLU, a 2x Resize, a 1x1 Conv, and a Resize back to the input size writing the logits:
    an FPN head in small."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("w1", rng.normal(0, 0.4, (8, 3, 3, 3))), ("b1", rng.normal(0, 0.1, 8)),
        ("w2", rng.normal(0, 0.4, (4, 8, 1, 1))), ("b2", np.zeros(4)),
        ("up", np.array([1, 1, 2, 2])), ("down", np.array([1, 1, 0.5, 0.5])))]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Resize", ["r1", "", "up"], ["u1"], mode="linear", name="upsample"),
        helper.make_node("Conv", ["u1", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Resize", ["c2", "", "down"], ["logits"], mode="linear", name="to_input_size"),
    ]
    graph = helper.make_graph(nodes, "fpn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, SIZE, SIZE])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_openvino_flavor_carries_an_upsampling_in_int8_but_not_the_logits(tmp_path: Path):
    calib = CalibrationSet(smooth_images(tmp_path / "imgs", 8), (SIZE, SIZE), PRE, samples=8)
    ov = set_precision(upsampling_onnx(tmp_path / "m.onnx"), tmp_path / "ov.onnx",
                       PrecisionSpec("int8", flavor="openvino", calib_method="max"), calib)
    graph = onnx.load(str(ov.path)).graph
    made = {o: n for n in graph.node for o in n.output}

    def dequantized(tensor: str) -> bool:  # read through a Q/DQ pair
        return made[tensor].op_type == "DequantizeLinear" and made[made[tensor].input[0]].op_type == "QuantizeLinear"

    upsample = next(n for n in graph.node if n.name == "upsample")
    assert dequantized(upsample.input[0])  # the ReLU's output, quantized for the Resize alone
    logits = made["logits"]
    assert logits.op_type == "Resize" and not dequantized(logits.input[0])  # the model's result stays float


@pytest.mark.parametrize("flavor", ["onnxruntime", "openvino"])
def test_7_bit_weights_span_half_the_range(tmp_path: Path, flavor: str):
    """weight_bits 7 (tried on a CPU without VNNI, whose int8 kernels add u8 x s8 products in pairs
    into a saturating 16-bit sum) writes weights in -64..63; 8 uses the whole int8 range."""
    from onnx import numpy_helper

    calib = CalibrationSet(smooth_images(tmp_path / "imgs", 8), (SIZE, SIZE), PRE, samples=8)
    fp32 = small_cnn_onnx(tmp_path / "m.onnx")
    widest = {}
    for bits in (7, 8):
        spec = PrecisionSpec("int8", flavor=flavor, calib_method="max", weight_bits=bits)
        graph = onnx.load(str(set_precision(fp32, tmp_path / f"{flavor}-{bits}.onnx", spec, calib).path)).graph
        weights = [numpy_helper.to_array(i) for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and i.dims]
        widest[bits] = int(max(np.abs(w.astype(np.int32)).max() for w in weights))
    assert widest[7] <= 64 < widest[8]  # per-channel max scales reach 127 at 8 bits
    with pytest.raises(Exception, match="7 on a cpu target"):
        PrecisionSpec("int8", flavor="tensorrt", weight_bits=7)  # TensorRT's GPUs have no such sum
