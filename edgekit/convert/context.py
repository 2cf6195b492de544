"""How much of its input one output pixel of a network reads: a neighbourhood, or the whole input.

A network that pools over its whole input (GlobalAveragePool, or a Reduce* over both spatial axes:
squeeze-excitation blocks, DeepLab's image pooling) or attends across it (a Softmax feeding a
MatMul: self-attention) gives every output pixel a value that depends on the entire tile. Tiled over
an image larger than its tile, its output then differs from one pass over that image, however wide
the overlap: the overlap hides a convolution's seams, not a mean taken over a different area. That
is the model's nature, not a fault; a model trained on tiles of its input size (edgekit's demo) is
meant to run that way, while one its package runs on whole pictures (PaddleOCR's DBNet detectors)
agrees with its package only where the tile is the picture. :func:`global_context` reads which one
a graph is, so `edgekit inspect` and the build report say it instead of leaving a user to find it
in an IoU.
"""
from __future__ import annotations

__all__ = ["GlobalContext", "global_context", "context_of"]

from collections import Counter
from dataclasses import dataclass

GLOBAL_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceSum", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceLogSumExp")
SPATIAL = ({2, 3}, {-2, -1})  # NCHW's spatial axes, counted from either end


@dataclass(frozen=True)
class GlobalContext:
    """What in a graph reads its whole input.

    Attributes:
        pooling: node count by op type of the reductions over both spatial axes.
        attention: Softmax nodes feeding a MatMul (self-attention).
    """

    pooling: tuple[tuple[str, int], ...] = ()
    attention: int = 0

    @property
    def is_global(self) -> bool:
        return bool(self.pooling) or self.attention > 0

    def describe(self) -> str:
        """One phrase: what reads the whole input, or that nothing does."""
        if not self.is_global:
            return "local: each output pixel reads a neighbourhood of its tile (the overlap covers the seams)"
        what = [f"{n} {op}" for op, n in self.pooling] + ([f"{self.attention} attention Softmax"] if self.attention else [])
        return (f"global ({', '.join(what)}): each output pixel reads the whole tile, so over an image larger "
                "than the tile the output differs from one pass at the image's size, whatever the overlap; "
                "to match such a pass build at that size (--input-size H W)")

    def to_dict(self) -> dict:
        return {"global": self.is_global, "pooling": dict(self.pooling), "attention": self.attention}


def global_context(model) -> GlobalContext:
    """The global reductions and attention of an ONNX ``model`` (a ModelProto; top-level graph)."""
    graph = model.graph
    consumers = Counter()
    for node in graph.node:
        if node.op_type in ("MatMul", "Einsum"):
            consumers.update(i for i in node.input if i)
    pools = Counter()
    attention = 0
    constants = _constants(graph)
    for node in graph.node:
        if node.op_type in GLOBAL_POOLS or (node.op_type in REDUCE_OPS and _spatial(node, constants)):
            pools[node.op_type] += 1
        elif node.op_type == "Softmax" and consumers[node.output[0]]:
            attention += 1
    return GlobalContext(tuple(sorted(pools.items())), attention)


def context_of(path) -> dict:
    """:func:`global_context` of an ONNX file with its sentence (``text``), as the build report and
    `edgekit inspect` show it; the weights are not read."""
    import onnx

    found = global_context(onnx.load(str(path), load_external_data=False))
    return found.to_dict() | {"text": found.describe()}


def _constants(graph) -> dict[str, list[int]]:
    """Small integer constants by name (initializers and Constant nodes): a Reduce's axes input."""
    from onnx import numpy_helper

    found = {}
    for init in graph.initializer:
        if init.data_type == 7 and len(init.dims) == 1 and init.dims[0] <= 8:
            found[init.name] = numpy_helper.to_array(init).tolist()
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == 7 and len(attr.t.dims) <= 1:
                    found[node.output[0]] = numpy_helper.to_array(attr.t).reshape(-1).tolist()
    return found


def _spatial(node, constants: dict) -> bool:
    """True when a Reduce node reduces both spatial axes (its axes as attribute, or as a constant input)."""
    axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = constants.get(node.input[1])
    return axes is not None and any(s <= set(axes) for s in SPATIAL)
