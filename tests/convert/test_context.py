"""Global context: which graphs read their whole input (global pooling over both spatial axes,
self-attention), read from the ONNX graph; a LayerNorm's mean over channels or a classifier's final
Softmax is not one."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.convert.context import global_context


def _graph(nodes, inits=(), opset: int = 18):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_value_info("y", helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    w = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), *nodes], "g", [x], [y],
                              [w, *inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model


def _axes(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def test_convolutions_alone_are_local():
    found = global_context(_graph([helper.make_node("Relu", ["c"], ["y"])]))
    assert not found.is_global and found.to_dict() == {"global": False, "pooling": {}, "attention": 0}
    assert found.describe().startswith("local")


def test_squeeze_excitation_s_global_average_pool_is_global():
    found = global_context(_graph([helper.make_node("GlobalAveragePool", ["c"], ["p"]),
                                   helper.make_node("Sigmoid", ["p"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])]))
    assert found.is_global and found.pooling == (("GlobalAveragePool", 1),)
    assert "1 GlobalAveragePool" in found.describe() and "--input-size" in found.describe()


@pytest.mark.parametrize("axes, spatial", [([2, 3], True), ([-1, -2], True), ([1, 2, 3], True), ([1], False),
                                           ([-1], False), ([3], False)])
def test_a_reduce_is_global_when_its_axes_input_covers_both_spatial_axes(axes, spatial):
    node = helper.make_node("ReduceMean", ["c", "axes"], ["y"], keepdims=1)
    found = global_context(_graph([node], [_axes("axes", axes)]))
    assert found.is_global is spatial


def test_a_reduce_s_axes_attribute_counts_too_and_a_constant_node_s():
    attr = _graph([helper.make_node("ReduceMax", ["c"], ["y"], axes=[2, 3], keepdims=1)], opset=13)
    const = _graph([helper.make_node("Constant", [], ["a"], value=_axes("v", [2, 3])),
                    helper.make_node("ReduceSum", ["c", "a"], ["y"], keepdims=1)])
    assert global_context(attr).pooling == (("ReduceMax", 1),)
    assert global_context(const).pooling == (("ReduceSum", 1),)


def test_softmax_feeding_a_matmul_is_attention_a_final_softmax_is_not():
    reshape = [helper.make_node("Reshape", ["c", "shape"], ["t"]),                      # (4, 64)
               helper.make_node("Transpose", ["t"], ["tt"], perm=[1, 0]),              # (64, 4)
               helper.make_node("MatMul", ["tt", "t"], ["scores"]),                     # (64, 64)
               helper.make_node("Softmax", ["scores"], ["attn"], axis=-1)]
    shape = _axes("shape", [4, 64])
    attention = _graph(reshape + [helper.make_node("MatMul", ["attn", "tt"], ["y"])], [shape])
    final = _graph(reshape[:3] + [helper.make_node("Softmax", ["scores"], ["y"], axis=-1)], [shape])
    assert global_context(attention).attention == 1 and global_context(attention).is_global
    assert global_context(final).attention == 0 and not global_context(final).is_global
