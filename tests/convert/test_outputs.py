"""What the deployed output holds, decided once (edgekit.convert.outputs.output_finding) for every source
kind: a graph ending in Sigmoid/Softmax (through ops that only move values) or values measured in 0..1
on real images is probabilities, recorded in the manifest, and nothing after the build applies a
second sigmoid or softmax; masks split a one-channel map where tiling does."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import tifffile
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from edgekit.cli.main import main
from edgekit.convert.outputs import output_finding, output_labels, values_are_probabilities

SIZE = 16


def graph(path: Path, tail: list[str], bias: float = -1.5, channels: int = 1, softmax_axis: int = 1) -> Path:
    """x (1, 3, 16, 16) -> 1x1 Conv (weights 1, ``bias``) -> each op of ``tail`` in turn -> y."""
    w = numpy_helper.from_array(np.ones((channels, 3, 1, 1), np.float32) * np.arange(1, channels + 1, dtype=np.float32)[:, None, None, None], "w")
    b = numpy_helper.from_array(np.full(channels, bias, np.float32), "b")
    inits, nodes, last = [w, b], [helper.make_node("Conv", ["x", "w", "b"], ["z0"], name="conv")], "z0"
    for i, op in enumerate(tail):
        out = f"z{i + 1}"
        if op == "Resize":
            inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), f"scales{i}"))
            nodes.append(helper.make_node("Resize", [last, "", f"scales{i}"], [out], mode="linear"))
        elif op == "Transpose":
            nodes.append(helper.make_node("Transpose", [last], [out], perm=[0, 1, 3, 2]))
        elif op == "Softmax":
            nodes.append(helper.make_node("Softmax", [last], [out], axis=softmax_axis, name="softmax"))
        elif op == "Clip01":
            inits += [numpy_helper.from_array(np.float32(0), f"lo{i}"), numpy_helper.from_array(np.float32(1), f"hi{i}")]
            nodes.append(helper.make_node("Clip", [last, f"lo{i}", f"hi{i}"], [out]))
        else:
            nodes.append(helper.make_node(op, [last], [out], name=op.lower()))
        last = out
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    from edgekit.convert.onnx_check import run_onnx

    return run_onnx(path, x)


def _finding(path: Path, x: np.ndarray, real: bool):
    return output_finding(onnx.load(str(path)), [_run(path, x)], "test inputs", real)


@pytest.mark.parametrize("tail, probabilities, basis", [
    (["Sigmoid"], True, "Sigmoid node 'sigmoid'"),
    (["Sigmoid", "Resize", "Transpose"], True, "Sigmoid node 'sigmoid'"),  # moved and interpolated: still probabilities
    ([], False, "values outside 0..1"),
    (["Sigmoid", "Relu", "Neg"], False, "values outside 0..1"),  # a Neg after it: not one any more
])
def test_the_graph_says_probabilities_through_ops_that_only_move_values(tmp_path, tail, probabilities, basis):
    path = graph(tmp_path / "m.onnx", tail)
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32) * 3
    found = _finding(path, x, real=False)
    assert found.probabilities is probabilities and basis in found.basis


def test_a_softmax_counts_only_over_the_channels(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    over_channels = _finding(graph(tmp_path / "c.onnx", ["Softmax"], channels=3), x, real=False)
    assert over_channels.probabilities and "Softmax node 'softmax'" in over_channels.basis
    over_width = _finding(graph(tmp_path / "w.onnx", ["Softmax"], channels=3, softmax_axis=3), x, real=False)
    assert not over_width.probabilities and "not summing to 1 over the channels" in over_width.basis


def test_one_channel_in_0_1_is_probabilities_on_real_images_only(tmp_path):
    path = graph(tmp_path / "m.onnx", ["Clip01"])  # no Sigmoid in the graph: only values can say it
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, SIZE, SIZE)).astype(np.float32)
    assert not _finding(path, x, real=False).probabilities
    found = _finding(path, x, real=True)
    assert found.probabilities and found.basis == "values in 0..1 on test inputs"
    assert values_are_probabilities([np.full((1, 3, 2, 2), 1 / 3)], real=False)
    assert not values_are_probabilities([np.full((1, 3, 2, 2), 0.2)], real=True)  # in 0..1, sums to 0.6


def test_labels_split_one_channel_where_masks_do():
    logits = np.array([[[[-0.2, 0.1]]]], np.float32)  # (1, 1, 1, 2)
    assert output_labels(logits, probabilities=False).tolist() == [[[0, 1]]]
    assert output_labels(np.array([[[[0.4, 0.6]]]]), probabilities=True).tolist() == [[[0, 1]]]
    assert output_labels(np.array([[[[0.2]], [[0.7]], [[0.1]]]]), probabilities=True).tolist() == [[[1]]]


def test_an_onnx_sigmoid_map_is_recorded_and_infer_applies_no_second_sigmoid(tmp_path):
    """U^2-Net's case: the manifest said nothing of an ONNX source's output, infer applied a sigmoid
    to the sigmoid map, every pixel read 0.5..0.73 and the mask was all 1."""
    from edgekit.artifact.manifest import read_manifest

    path = graph(tmp_path / "m.onnx", ["Sigmoid"])
    pixels = np.random.default_rng(1).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "scene.png")
    code = main(["build", str(path), "-o", str(tmp_path / "a"), "--task", "segmentation", "--latency-runs", "0",
                 "--mean", "0,0,0", "--std", "1,1,1"])
    assert code == 0
    assert read_manifest(tmp_path / "a").output == {"probabilities": True}
    code = main(["infer", str(tmp_path / "a"), str(tmp_path / "scene.png"), "-o", str(tmp_path / "mask.png"),
                 "--probabilities", str(tmp_path / "p.tif"), "--overlap", "4", "--no-progress"])
    assert code == 0
    want = 1 / (1 + np.exp(-(pixels.astype(np.float32) / 255).sum(2) + 1.5))  # the 1x1 conv, then the sigmoid
    got = tifffile.imread(tmp_path / "p.tif").astype(np.float32)
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=2e-3)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "mask.png")), (want > 0.5).astype(np.uint8))
    assert 0.2 < (want > 0.5).mean() < 0.8  # both classes present: the test can tell


def test_a_pytorch_model_ending_in_a_sigmoid_is_probabilities_too(tmp_path):
    """One rule for every source kind: a one-channel PyTorch output measured on a random sample says
    nothing, its exported graph's Sigmoid does."""
    from edgekit.convert.pipeline import BuildConfig, build

    result = build("tests.convert.factories:tiny_sigmoid", tmp_path / "a",
                   BuildConfig(input_size=(32, 32), latency_runs=0, task="segmentation"))
    assert result.manifest.output["probabilities"] is True
    assert "Sigmoid node" in result.report.details["output"]["probabilities_basis"]
