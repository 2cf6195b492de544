"""The dynamo exporter runs without its own optimizer; its attention scale's CastLike becomes a Cast
that the simplify stage folds, so the deployable graph keeps no constant arithmetic."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from edgekit.convert.castlike import castlike_to_cast
from edgekit.convert.export import ExportSpec, export_onnx
from edgekit.convert.onnx_check import run_onnx
from edgekit.convert.simplify import simplify_onnx

onnx = pytest.importorskip("onnx")


class Attention(torch.nn.Module):
    """A ViT block's attention core: its scale 1/sqrt(head_dim) is computed in the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = torch.nn.Conv2d(3, 24, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        q, k, v = self.qkv(x).flatten(2).transpose(1, 2).reshape(n, h * w, 3, 2, 4).permute(2, 0, 3, 1, 4)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return out.permute(0, 1, 3, 2).reshape(n, 8, h, w)


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_attention_exports_without_castlike_and_simplifies_to_no_constant_arithmetic(tmp_path):
    torch.manual_seed(0)
    model = Attention().eval()
    exported = export_onnx(model, tmp_path / "a.onnx", ExportSpec((8, 8), runtime="tensorrt"))
    assert exported.exporter == "dynamo" and exported.error.max_rel < 1e-4
    assert "CastLike" not in _ops(exported.path)
    simple = simplify_onnx(exported.path, tmp_path / "a.sim.onnx")
    ops = _ops(simple.path)
    assert "Sqrt" not in ops and "Cast" not in ops, ops  # the scale folded to one constant
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(run_onnx(simple.path, x), model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_castlike_of_a_known_type_becomes_a_cast_and_computes_the_same(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    head = numpy_helper.from_array(np.array(8, np.int64), "head")
    graph = helper.make_graph(
        [helper.make_node("CastLike", ["head", "x"], ["d"]), helper.make_node("Sqrt", ["d"], ["s"]),
         helper.make_node("Div", ["x", "s"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [head])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    before, after = tmp_path / "before.onnx", tmp_path / "after.onnx"
    onnx.save(model, str(before))
    assert castlike_to_cast(model) == 1
    [cast] = [n for n in model.graph.node if n.op_type == "Cast"]
    assert cast.attribute[0].i == TensorProto.FLOAT and list(cast.input) == ["head"]
    onnx.checker.check_model(model)
    onnx.save(model, str(after))
    x = np.arange(4, dtype=np.float32)[None]
    np.testing.assert_allclose(run_onnx(after, x), run_onnx(before, x))
    np.testing.assert_allclose(run_onnx(after, x), x / np.sqrt(8.0), rtol=1e-6)
