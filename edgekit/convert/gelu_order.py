"""Graph rewrite: put the dynamo exporter's erf-GELU into the operand order ONNX Runtime fuses.

torch.onnx's dynamo exporter (torch 2.14, opset 18) writes ``gelu(x)`` as
``x * (0.5 * (1 + erf(x / sqrt 2)))``. ONNX Runtime's GeluFusion matches only
``(x * (1 + erf(x / sqrt 2))) * 0.5`` and ``(0.5 * x) * (1 + erf(x / sqrt 2))`` (the
TorchScript exporter's forms), so the dynamo graph keeps five element-wise kernels per GELU
(Div, Erf, Add, Mul, Mul) where the TorchScript graph runs one fused ``Gelu``. This rewrite
swaps the two Mul nodes' operands: ``inner = x * (1 + erf)``, ``out = inner * 0.5``. Same ops,
same node count, same value up to float rounding; nothing else in the graph changes.
"""
from __future__ import annotations

__all__ = ["reorder_gelu"]

import math


def _scalars(graph) -> dict[str, float]:
    """Single-element float constants by name (initializers and Constant nodes)."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return {k: float(v.reshape(())) for k, v in values.items() if v.size == 1 and v.dtype.kind == "f"}


def _only_consumer(consumers: dict, name: str, op_type: str):
    users = consumers.get(name, [])
    return users[0] if len(users) == 1 and users[0].op_type == op_type else None


def reorder_gelu(model) -> int:
    """Rewrite every ``x * (0.5 * (1 + erf(x / sqrt 2)))`` in ``model`` (in place); returns how many."""
    graph = model.graph
    scalars = _scalars(graph)
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    count = 0
    for erf in [n for n in graph.node if n.op_type == "Erf"]:
        div = producer.get(erf.input[0])
        add = _only_consumer(consumers, erf.output[0], "Add")
        half = add and _only_consumer(consumers, add.output[0], "Mul")
        outer = half and _only_consumer(consumers, half.output[0], "Mul")
        if div is None or div.op_type != "Div" or outer is None:
            continue
        x, root2 = div.input
        one = next((i for i in add.input if i != erf.output[0]), None)
        point5 = next((i for i in half.input if i != add.output[0]), None)
        if (not math.isclose(scalars.get(root2, 0.0), math.sqrt(2), rel_tol=1e-6) or scalars.get(one) != 1.0
                or scalars.get(point5) != 0.5 or x not in outer.input):
            continue
        half.input[:] = [x, add.output[0]]
        outer.input[:] = [half.output[0], point5]
        count += 1
    return count
