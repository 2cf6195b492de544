"""The target decides the opset: a deployable graph made fit for its TensorRT line's ONNX parser.

TensorRT 8.5 and 8.6 (JetPack 5, JetPack 6.0) read opsets up to 17, 10.x up to 20, 11.5 up to 25
(``edgekit/data/tensorrt_lines.yaml``, read by :attr:`edgekit.targets.Target.max_opset`); the dynamo
exporter writes 18 and the precision stage keeps what it is given. A graph above its target's
opset is converted down with ONNX's version converter and proven equal on ONNX Runtime; a graph
that still does not fit (an op the line cannot read, a node of another domain such as ONNX
Runtime's ``com.microsoft``) is a one-line error naming the nodes.
"""
from __future__ import annotations

__all__ = ["OpsetFit", "fit_opset", "opset_problems", "graph_opset"]

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit.atomic import atomic_file
from edgekit.errors import ConfigError, ParityError

DEFAULT_DOMAINS = ("", "ai.onnx")
PARKED = "edgekit.parked"

# Reductions whose axes became an input at opset 18 (ReduceSum's did at 13). ONNX's adapter down
# reads the axes only from Constant nodes and writes `axes: []` (reduce everything) for an
# initializer, as the dynamo exporter writes them: edgekit rewrites these nodes itself.
REDUCE_18 = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
             "ReduceLogSumExp", "ReduceSumSquare")

# The defaults of attributes that newer op versions added (0: antialias, ceil_mode,
# noop_with_empty_axes; "stretch": Resize's keep_aspect_ratio_policy).
NEWER_DEFAULTS = (0, b"stretch")

# Ops whose newer version only added features (ONNX's version converter has no adapter down for
# them): a node that uses none of those features reads the same at the older version. The check
# says when a node is such a node.
SUPERSETS = {
    "Resize": lambda n, ins: not _attr(n, "antialias", 0) and not _attr(n, "axes", None)
    and _attr(n, "keep_aspect_ratio_policy", b"stretch") in (b"stretch", "stretch"),
    "Pad": lambda n, ins: len(ins) < 4 or not ins[3],
    "ScatterElements": lambda n, ins: _attr(n, "reduction", b"none") not in (b"max", b"min"),
    "ScatterND": lambda n, ins: _attr(n, "reduction", b"none") not in (b"max", b"min"),
    "LpPool": lambda n, ins: not _attr(n, "ceil_mode", 0),
}


@dataclass(frozen=True)
class OpsetFit:
    """What fitting a graph to its target's opset did.

    Attributes:
        opset_before / opset_after: the graph's default-domain opset.
        max_opset: the highest the target reads.
        max_rel: the converted graph's largest output difference, relative to the output's range
            (None when nothing was converted).
    """

    opset_before: int
    opset_after: int
    max_opset: int
    max_rel: float | None
    seconds: float

    @property
    def converted(self) -> bool:
        return self.opset_after != self.opset_before

    def to_dict(self) -> dict:
        return asdict(self) | {"converted": self.converted}


def graph_opset(model) -> int:
    """The default-domain opset a model imports."""
    return next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), 0)


def opset_problems(model, max_opset: int) -> list[str]:
    """Why ``model`` cannot be parsed by a line reading opsets up to ``max_opset`` (empty: it can).

    Checks the graph's opset, every node's domain (only the default ONNX domain), and every node's
    operator version at the graph's opset (its schema must exist at ``max_opset`` too)."""
    from onnx import defs

    problems = []
    opset = graph_opset(model)
    if opset > max_opset:
        problems.append(f"opset {opset} > {max_opset}")
    for node in _nodes(model.graph):
        label = f"{node.op_type} {node.name!r}" if node.name else node.op_type
        if node.domain not in DEFAULT_DOMAINS:
            problems.append(f"{label} is of domain {node.domain}")
            continue
        try:
            since = defs.get_schema(node.op_type, opset, "").since_version
            defs.get_schema(node.op_type, max_opset, "")
        except Exception:
            problems.append(f"{label} does not exist at opset {max_opset}")
            continue
        if since > max_opset:
            problems.append(f"{label} is version {since}")
    return problems


def _attr(node, name: str, default):
    from onnx import helper

    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else helper.get_attribute_value(found)


def _convert(model, max_opset: int):
    """ONNX's version converter, with the nodes of :data:`SUPERSETS` that use none of their newer
    features parked in a domain of their own while it runs (it has no adapter for them)."""
    from onnx import helper, version_converter

    parked = []
    constants = _constants(model)
    for node in _nodes(model.graph):
        check = SUPERSETS.get(node.op_type)
        fits = check is not None and check(node, list(node.input))
        if node.op_type in REDUCE_18 and max_opset < 18:
            fits = _axes_to_attribute(node, constants)
        if node.domain in DEFAULT_DOMAINS and fits:
            parked.append(node)
            node.domain = PARKED
    if parked:
        model.opset_import.append(helper.make_opsetid(PARKED, 1))
    converted = version_converter.convert_version(model, max_opset)
    for node in _nodes(converted.graph):
        if node.domain == PARKED:
            node.domain = ""
        _drop_unknown_defaults(node, max_opset)
    kept = [o for o in converted.opset_import if o.domain != PARKED]
    del converted.opset_import[:]
    converted.opset_import.extend(kept)
    return converted


def _constants(model) -> dict:
    from onnx import numpy_helper

    found = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def _axes_to_attribute(node, constants: dict) -> bool:
    """A Reduce* 18 node with constant axes rewritten as its version 13 (axes an attribute); False
    when its axes are computed at run time or it asks for ``noop_with_empty_axes``."""
    from onnx import helper

    if _attr(node, "noop_with_empty_axes", 0) or (len(node.input) > 1 and node.input[1] not in constants):
        return False
    if len(node.input) > 1 and node.input[1]:
        node.attribute.append(helper.make_attribute("axes", [int(a) for a in constants[node.input[1]].ravel()]))
    del node.input[1:]
    return True


def _drop_unknown_defaults(node, opset: int) -> None:
    """Remove attributes the op's schema at ``opset`` does not know when they hold their newer
    version's default (:data:`NEWER_DEFAULTS`; the converter's Reduce* 18 -> 17 adapter keeps
    ``noop_with_empty_axes=0``, the dynamo exporter writes Resize's ``keep_aspect_ratio_policy``)."""
    from onnx import defs, helper

    if node.domain not in DEFAULT_DOMAINS:
        return
    try:
        known = defs.get_schema(node.op_type, opset, "").attributes
    except Exception:
        return
    keep = [a for a in node.attribute if a.name in known or helper.get_attribute_value(a) not in NEWER_DEFAULTS]
    if len(keep) != len(node.attribute):
        del node.attribute[:]
        node.attribute.extend(keep)


def _nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _nodes(sub)


def _outputs(path: Path, feed: np.ndarray) -> list[np.ndarray]:
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings

    with OnnxRuntimeRunner(path, SessionSettings()) as runner:
        return list(runner.infer({runner.input_specs()[0].name: feed}).values())


def fit_opset(path: Path, max_opset: int, rtol: float = 1e-3) -> OpsetFit:
    """Convert the ONNX file ``path`` in place down to ``max_opset`` when it is above it, proven equal
    on ONNX Runtime (largest output difference relative to its range <= ``rtol``).

    Raises:
        ConfigError: the graph cannot be made fit (conversion fails, or nodes the line cannot read).
        ParityError: the converted graph computes something else.
    """
    import onnx

    from edgekit.convert.onnx_check import random_input
    from edgekit.metrics import output_error

    start = time.perf_counter()
    path = Path(path)
    model = onnx.load(str(path))
    before = graph_opset(model)
    max_rel = None
    if before > max_opset:
        try:
            converted = _convert(onnx.load(str(path)), max_opset)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConfigError(f"the graph (opset {before}) cannot be converted to opset {max_opset}, the highest "
                              f"this target's TensorRT reads: {first}") from None
        problems = opset_problems(converted, max_opset)
        if problems:
            raise ConfigError(_unfit(problems, max_opset))
        feed = random_input(model)
        reference = _outputs(path, feed)
        with atomic_file(path) as tmp:
            onnx.save(converted, str(tmp))
            candidate = _outputs(tmp, feed)
            max_rel = max(output_error(r, c).max_rel for r, c in zip(reference, candidate))
            if max_rel > rtol:
                raise ParityError(f"converted to opset {max_opset}, the graph differs by {max_rel:.3g} "
                                  f"(relative, accepted {rtol:g}); nothing was written")
        model = converted
    else:
        problems = opset_problems(model, max_opset)
        if problems:
            raise ConfigError(_unfit(problems, max_opset))
    return OpsetFit(before, graph_opset(model), max_opset, max_rel, time.perf_counter() - start)


def _unfit(problems: list[str], max_opset: int) -> str:
    shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
    return f"the graph does not fit this target's TensorRT (opsets up to {max_opset}): {shown}"
