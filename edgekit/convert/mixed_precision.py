"""The graph side of mixed precision: quantizable regions, and mixtures cut from one Q/DQ graph.

The build's int8 search (:mod:`edgekit.convert.int8_search`) and `edgekit optimize` both cut
their mixtures here.

A *mixture* keeps some nodes of a fully quantized Q/DQ graph in float: their inputs are rewired
from the DequantizeLinear outputs to the float tensors (activations: the QuantizeLinear's input;
weights and biases: the FP32 graph's own initializers), and Q/DQ nodes nobody reads any more are
dropped. Every mixture therefore shares the calibration of the graph it is cut from, so no
mixture needs calibrating again.

Regions group quantizable nodes (Conv, MatMul, Gemm) by the module their weights come from
(``backbone.stages_2.blocks.1``), in graph order, merged with their neighbours until there are
at most ``max_regions``: few enough to measure each one's accuracy cost.
"""
from __future__ import annotations

__all__ = ["Region", "regions_from_onnx", "quantized_nodes", "mixed_precision_model", "QUANTIZABLE_OPS"]

from dataclasses import dataclass
from pathlib import Path

QUANTIZABLE_OPS = ("Conv", "MatMul", "Gemm")


@dataclass(frozen=True)
class Region:
    """Quantizable nodes lowered or kept together.

    Attributes:
        name: the module path(s) the nodes' weights come from, or the first node's name.
        nodes: node names, in graph order.
    """

    name: str
    nodes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "nodes": list(self.nodes)}


def _module_of(node, initializers: set[str]) -> str | None:
    """The module path of a node with weights: its scope where the exporter wrote one (``a.b.conv``
    for ``/a/b.conv/MatMul``; TorchScript-style names, whose weights simplify and fusion rename:
    ``/a/b.0/proj/Add_output_0_weight_fused``), else the weight's (``a.b.conv`` for
    ``a.b.conv.weight``), else None."""
    weights = [name for name in node.input[1:] if name in initializers]
    if not weights:
        return None
    scope = node.name.strip("/").split("/")[:-1] if node.name.startswith("/") else []
    if scope:
        return ".".join(scope)
    named = next((name for name in weights if "." in name and "/" not in name), None)
    return named.rsplit(".", 1)[0] if named else None


def _block_of(module: str) -> str:
    """The block a layer belongs to: its parent module, or the layer itself when it is a numbered
    item of a list (see :func:`_groups`)."""
    parent, _, last = module.rpartition(".")
    return module if not parent or last.isdigit() else parent


def _groups(graph, op_types: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """(block path, node names) in graph order; unnamed weights join the group before them. In a
    graph whose weights name no module at all (``878``, ``onnx::Conv_7``: older exporters, other
    frameworks) each node is a group of its own, so that merging cuts the graph into runs of
    neighbours rather than one group of everything. A module that is a numbered item of a list
    (``features.3`` of a Sequential; paddle2onnx's ``p2o.pd_op.batch_norm_.7``) is its own block:
    its parent is the list, which would hold every such layer of the network in one group."""
    inits = {i.name for i in graph.initializer}
    nodes = [n for n in graph.node if n.op_type in op_types and n.name]
    modules = [_module_of(n, inits) for n in nodes]
    named = any(modules)
    groups: list[tuple[str, list[str]]] = []
    for node, module in zip(nodes, modules):
        before = groups[-1][0] if groups and named else node.name
        key = _block_of(module) if module else before
        if groups and groups[-1][0] == key:
            groups[-1][1].append(node.name)
        else:
            groups.append((key, [node.name]))
    return groups


def _merge(groups: list[tuple[str, list[str]]], max_regions: int) -> list[Region]:
    """Merge adjacent groups, smallest pair first, until at most ``max_regions`` remain."""
    items = [([key], nodes) for key, nodes in groups]
    while len(items) > max(max_regions, 1):
        sizes = [len(items[i][1]) + len(items[i + 1][1]) for i in range(len(items) - 1)]
        i = sizes.index(min(sizes))
        items[i : i + 2] = [(items[i][0] + items[i + 1][0], items[i][1] + items[i + 1][1])]
    regions, seen = [], set()
    for keys, nodes in items:
        name = keys[0] if len(keys) == 1 else f"{keys[0]} .. {keys[-1]}"
        name = name if name not in seen else f"{name} ({nodes[0]})"
        seen.add(name)
        regions.append(Region(name, tuple(nodes)))
    return regions


def regions_from_onnx(path: Path, max_regions: int = 24, op_types: tuple[str, ...] = QUANTIZABLE_OPS,
                      only: set[str] | None = None) -> tuple[Region, ...]:
    """The quantizable regions of an FP32 ONNX graph.

    Args:
        path: the FP32 graph.
        max_regions: most regions returned (neighbours are merged beyond it).
        op_types: node types that can be quantized.
        only: when given, nodes outside it are left out (e.g. those a quantizer did not touch).
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    groups = [(k, [n for n in nodes if only is None or n in only]) for k, nodes in _groups(graph, op_types)]
    return tuple(_merge([g for g in groups if g[1]], max_regions))


def quantized_nodes(qdq_path: Path, op_types: tuple[str, ...] = QUANTIZABLE_OPS) -> set[str]:
    """Names of the nodes of ``op_types`` that read at least one DequantizeLinear output."""
    import onnx

    graph = onnx.load(str(qdq_path), load_external_data=False).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in graph.node if n.op_type in op_types and any(i in dq_outputs for i in n.input)}


def mixed_precision_model(qdq_path: Path, fp32_path: Path, float_nodes: set[str] | frozenset[str], out: Path) -> Path:
    """Write the Q/DQ graph ``qdq_path`` with ``float_nodes`` computing in float, to ``out``."""
    import onnx

    model = onnx.load(str(qdq_path))
    reference = onnx.load(str(fp32_path))
    originals = {n.name: n for n in reference.graph.node}
    weights = {i.name: i for i in reference.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    added: set[str] = set()
    for node in model.graph.node:
        if node.name in float_nodes and node.name in originals:
            _to_float(node, originals[node.name], producers, weights, model.graph, added)
    _float_outputs(model.graph, set(float_nodes))
    _drop_dead(model.graph)
    onnx.save(model, str(out))
    return Path(out)


def _to_float(node, original, producers: dict, weights: dict, graph, added: set[str]) -> None:
    """Rewire ``node``'s dequantized inputs to float tensors."""
    for i, name in enumerate(node.input):
        dq = producers.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or i >= len(original.input):
            continue
        q = producers.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            node.input[i] = q.input[0]
        elif original.input[i] in weights:
            restored = f"{original.input[i]}_float"
            if restored not in added:
                tensor = graph.initializer.add()
                tensor.CopyFrom(weights[original.input[i]])
                tensor.name = restored
                added.add(restored)
            node.input[i] = restored


def _float_outputs(graph, float_nodes: set[str]) -> None:
    """Float nodes' outputs skip their Q/DQ pair, except where a quantized node reads them; so does
    any activation whose pair no quantized node reads any more (a residual Add read the quantized
    value only because the Conv beside it, now float, did)."""
    readers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    weights = {i.name for i in graph.initializer}

    def dequantized(tensor: str) -> list:
        """The DequantizeLinear nodes of ``tensor``'s Q/DQ pairs."""
        return [dq for q in readers.get(tensor, []) if q.op_type == "QuantizeLinear"
                for dq in readers.get(q.output[0], []) if dq.op_type == "DequantizeLinear"]

    def quantized_reader(dqs: list) -> bool:
        return any(r.op_type in QUANTIZABLE_OPS and r.name not in float_nodes
                   for dq in dqs for r in readers.get(dq.output[0], []))

    floated = {o for n in graph.node if n.name in float_nodes for o in n.output}
    for tensor in sorted({q.input[0] for q in graph.node if q.op_type == "QuantizeLinear" and q.input[0] not in weights}):
        dqs = dequantized(tensor)
        if tensor in floated or not quantized_reader(dqs):
            for dq in dqs:
                _bypass(dq, tensor, readers, outputs, float_nodes)


def _bypass(dq, tensor: str, readers: dict, outputs: set[str], float_nodes: set[str]) -> None:
    for reader in readers.get(dq.output[0], []):
        if reader.op_type not in QUANTIZABLE_OPS or reader.name in float_nodes:
            for i, name in enumerate(reader.input):
                if name == dq.output[0]:
                    reader.input[i] = tensor
    if dq.output[0] in outputs:  # a graph output keeps its name: an Identity replaces the DQ
        dq.op_type, dq.domain = "Identity", ""
        del dq.input[:]
        dq.input.append(tensor)
        del dq.attribute[:]


def _drop_dead(graph) -> None:
    """Remove nodes whose outputs nothing reads, then initializers nothing reads."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    read = {i for n in graph.node for i in n.input} | outputs
    for init in [i for i in graph.initializer if i.name not in read]:
        graph.initializer.remove(init)
