"""The simplify stage's check: every output against the fp32 budget of what it holds, on real images
when the build has them; a tool that fails it gives way to the next, then to the graph as it was.

The simplifiers here are onnxslim and onnxsim themselves, except where a test needs a tool whose
graph changes the outputs by a known amount: then ``_onnxslim``/``_onnxsim`` return the input graph
with its bias moved (what a rewrite that re-associates or folds differently does, in small)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.compile.check import CheckInputs
from edgekit.convert import simplify
from edgekit.convert.onnx_check import run_onnx
from edgekit.convert.simplify import simplify_onnx

SIZE = 8


def graph(path: Path, bias: float, sigmoid: bool) -> Path:
    """x -> 1x1 Conv (weights 1, ``bias``) -> Add 0 (a node to simplify away) [-> Sigmoid] -> y."""
    inits = [numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "w"),
             numpy_helper.from_array(np.array([bias], np.float32), "b"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["z"]), helper.make_node("Add", ["z", "zero"], ["a"]),
             helper.make_node("Sigmoid" if sigmoid else "Identity", ["a"], ["y"])]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, SIZE, SIZE])], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def moved_bias(by: float):
    """A 'simplifier' whose graph differs from its input by ``by`` on the bias."""
    def tool(model):
        out = onnx.ModelProto()
        out.CopyFrom(model)
        b = next(i for i in out.graph.initializer if i.name == "b")
        b.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(b) + np.float32(by), "b"))
        return out
    return tool


def test_a_near_zero_probability_map_is_held_to_an_absolute_budget(tmp_path, monkeypatch):
    """PP-OCRv3's case: fed noise, a text detector's sigmoid map is ~5e-7 everywhere; a rewrite moving
    it by 1e-7 read 'relative 0.222 > 0.001' and stopped the build."""
    src = graph(tmp_path / "m.onnx", bias=-14.0, sigmoid=True)
    monkeypatch.setattr(simplify, "_onnxslim", moved_bias(0.3))
    result = simplify_onnx(src, tmp_path / "s.onnx")
    assert result.tool == "onnxslim" and result.error.max_rel > 0.1  # relative to ~3e-7: meaningless
    assert result.error.max_abs < 1e-3 and "probabilities, budget 0.001" in result.check


def test_a_tool_that_changes_the_outputs_gives_way_to_the_next(tmp_path, monkeypatch):
    src = graph(tmp_path / "m.onnx", bias=0.5, sigmoid=False)
    monkeypatch.setattr(simplify, "_onnxslim", moved_bias(1.0))
    result = simplify_onnx(src, tmp_path / "s.onnx")
    assert result.tool == "onnxsim" and "onnxslim changed the outputs: 1 on 'y' (logits" in result.notes


def test_when_no_tool_holds_the_graph_is_kept_as_it_was(tmp_path, monkeypatch):
    src = graph(tmp_path / "m.onnx", bias=0.5, sigmoid=False)
    monkeypatch.setattr(simplify, "_onnxslim", moved_bias(1.0))
    monkeypatch.setattr(simplify, "_onnxsim", moved_bias(-1.0))
    result = simplify_onnx(src, tmp_path / "s.onnx")
    assert result.tool == "none" and result.nodes_after == result.nodes_before
    assert "onnxslim changed the outputs" in result.notes and "onnxsim changed the outputs" in result.notes
    assert result.notes.endswith("kept the graph unsimplified")
    x = np.random.default_rng(3).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    np.testing.assert_array_equal(run_onnx(result.path, x), run_onnx(src, x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "s.onnx"]  # no scratch file left


def test_the_check_runs_on_the_real_images_given(tmp_path):
    src = graph(tmp_path / "m.onnx", bias=0.5, sigmoid=True)
    images = np.random.default_rng(4).uniform(-2, 2, (2, 1, 3, SIZE, SIZE)).astype(np.float32)
    result = simplify_onnx(src, tmp_path / "s.onnx", inputs=CheckInputs(tuple(images), "2 held-out images"))
    assert result.tool == "onnxslim" and result.check.endswith("on 2 held-out images")
    assert result.nodes_after < result.nodes_before
