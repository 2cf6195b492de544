"""Outputs the way models give them: one tensor, a tuple, or a dict, reduced to the one edgekit deploys.

torchvision's segmenters return ``{"out": ..., "aux": ...}``, detection-style and HF models
return tuples or ``ModelOutput`` dicts. :func:`select_output` runs the model once, names every
tensor it returns, and wraps the model so it returns the chosen one: the name given
(``--output-name NAME``), else the first with the input's spatial layout (N, C, H, W) at the input's
height and width, else the first 4-D one (logits at a lower resolution), else the first tensor.
The others are left out of the deployable graph and the report lists them.

Whether the deployed output already holds probabilities (so `infer`, `run` and `compare` apply no
sigmoid or softmax of their own) is decided here, once, for every source kind, on the graph the
build deploys: :func:`output_finding`. The graph says it when the node producing the output is a
Sigmoid, HardSigmoid or Softmax (through ops that only move or pick values: Reshape, Transpose,
Slice, Concat, a linear Resize ...); else the values measured say it: in 0..1 and summing to 1
over the channels (a softmax), or, for one channel, in 0..1 on real images (never on a random
input alone: a logit map can stay in 0..1 on noise). :func:`output_labels` turns an output into
the labels a mask holds, by that same finding (one channel: 0.5 on probabilities, 0 on logits).

NumPy and onnx here; torch only inside :func:`select_output`.
"""
from __future__ import annotations

__all__ = ["OutputChoice", "select_output", "OutputFinding", "output_finding", "values_are_probabilities",
           "output_labels", "PROBABILITY_OPS"]

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgekit.errors import ConfigError

PROBABILITY_OPS = ("Sigmoid", "HardSigmoid", "Softmax")
# ops whose outputs are values of their (first) input, moved, picked or averaged: a probability stays one
_PASS_THROUGH = ("Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Gather", "Split",
                 "Concat", "Expand", "Tile", "Cast", "MaxPool", "AveragePool", "Resize", "Upsample")


@dataclass(frozen=True)
class OutputChoice:
    """Which of a model's outputs is deployed.

    Attributes:
        chosen: its name (``out``, ``0``, ``logits``; ``output`` for a model returning one tensor).
        shape: its shape for the sample input.
        outputs: every output seen, name -> shape.
        stride: input height / output height (1: full resolution; 4: logits at a quarter).
        probabilities: the values look like probabilities already (in [0, 1], summing to 1 over classes).
    """

    chosen: str
    shape: tuple[int, ...]
    outputs: dict
    stride: float = 1.0
    probabilities: bool = False

    @property
    def dropped(self) -> tuple[str, ...]:
        return tuple(n for n in self.outputs if n != self.chosen)

    def describe(self) -> str:
        text = f"output {self.chosen!r} {list(self.shape)}"
        if self.dropped:
            text += f" (left out: {', '.join(self.dropped)})"
        if self.stride != 1:
            text += f", at 1/{self.stride:g} of the input resolution"
        if self.probabilities:
            text += ", probabilities (not logits)"
        return text

    def to_dict(self) -> dict:
        return {"chosen": self.chosen, "shape": list(self.shape), "outputs": {k: list(v) for k, v in self.outputs.items()},
                "stride": self.stride, "probabilities": self.probabilities}


def _flatten(value, prefix: str = "") -> list[tuple[str, object]]:
    """(name, tensor) for every tensor in a nested tensor / tuple / list / dict output."""
    import torch

    if isinstance(value, torch.Tensor):
        return [(prefix or "output", value)]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (tuple, list)):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return []
    found = []
    for key, item in items:
        found += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    return found


def _default(named: list[tuple[str, object]], hw: tuple[int, int]) -> str:
    four_d = [n for n, t in named if t.dim() == 4]
    exact = [n for n, t in named if t.dim() == 4 and tuple(t.shape[2:]) == tuple(hw)]
    return (exact or four_d or [named[0][0]])[0]


def _looks_like_probabilities(tensor) -> bool:
    """A PyTorch output on the sample (random: a softmax says it, one channel in 0..1 does not)."""
    if not tensor.is_floating_point():
        return False
    return values_are_probabilities([tensor.detach().float().cpu().numpy()], real=False)


def select_output(model, sample, name: str | None = None):
    """The model reduced to one output tensor, and which one it is.

    Args:
        model: a torch module (or ScriptModule) in eval mode.
        sample: an input batch (N, C, H, W).
        name: the output to keep (``--output-name``); None chooses as the module docstring says.

    Returns:
        ``(module, OutputChoice)``; the module is ``model`` itself when it returns one tensor.
    """
    import torch

    with torch.no_grad():
        value = model(sample)
    named = _flatten(value)
    if not named:
        raise ConfigError(f"the model returns a {type(value).__name__}, which holds no tensor edgekit can deploy")
    names = [n for n, _ in named]
    if name is not None and name not in names:
        raise ConfigError(f"the model has no output {name!r}; its outputs: {', '.join(names)}")
    chosen = name or _default(named, tuple(sample.shape[2:]))
    tensor = dict(named)[chosen]
    stride = float(sample.shape[2]) / float(tensor.shape[2]) if tensor.dim() == 4 else 1.0
    choice = OutputChoice(chosen, tuple(tensor.shape), {n: tuple(t.shape) for n, t in named}, stride,
                          _looks_like_probabilities(tensor))
    if isinstance(value, torch.Tensor):
        return model, choice
    if isinstance(model, torch.jit.ScriptModule):
        raise ConfigError(f"the TorchScript program returns {len(named)} outputs ({', '.join(names)}); the exporter "
                          "cannot pick one inside it: save it returning one tensor, or build from module:factory")
    return _Selected(model, chosen).eval(), choice


def _pick(value, path: list[str]):
    for key in path:
        value = value[int(key)] if isinstance(value, (tuple, list)) else value[key]
    return value


def _Selected(model, chosen: str):
    """``model`` returning only its output ``chosen`` (a dotted path into tuples and dicts)."""
    import torch

    class Selected(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.path = chosen.split(".")

        def forward(self, x):
            return _pick(self.model(x), self.path)

    return Selected()



# ---- what the deployed output holds: one rule for every source kind ---------------------------

@dataclass(frozen=True)
class OutputFinding:
    """Whether a graph's deployed (first) output holds probabilities, and what said so.

    Attributes:
        name / shape: the output.
        probabilities: True: already probabilities (no sigmoid or softmax after it).
        basis: what decided it, for the report (``Sigmoid node 'sigmoid_0'``, ``values in 0..1
            summing to 1 over 2 channels on 8 held-out images``, ``values outside 0..1 ...``).
    """

    name: str
    shape: tuple
    probabilities: bool
    basis: str

    def to_dict(self) -> dict:
        return {"chosen": self.name, "shape": list(self.shape), "probabilities": self.probabilities,
                "probabilities_basis": self.basis}


def values_are_probabilities(values: Sequence[np.ndarray], real: bool) -> bool:
    """Every value in 0..1 and, over several channels (axis 1), summing to 1; one channel counts
    only on ``real`` images (noise can keep a logit map inside 0..1)."""
    arrays = [np.asarray(v) for v in values]
    if not arrays or not all(np.issubdtype(a.dtype, np.floating) and a.ndim >= 2 and a.size for a in arrays):
        return False
    if any(float(a.min()) < 0.0 or float(a.max()) > 1.0 for a in arrays):
        return False
    if arrays[0].shape[1] == 1:
        return real
    return all(np.allclose(a.astype(np.float64).sum(1), 1.0, atol=1e-3) for a in arrays)


def _producer(graph, name: str):
    return next((n for n in graph.node if name in n.output), None)


def _probability_node(graph, name: str, depth: int = 0):
    """The Sigmoid / HardSigmoid / Softmax node whose values ``name`` holds, through pass-through ops."""
    node = _producer(graph, name)
    if node is None or depth > 32:
        return None
    if node.op_type in PROBABILITY_OPS and node.domain in ("", "ai.onnx"):
        return node
    if node.op_type not in _PASS_THROUGH:
        return None
    if node.op_type in ("Resize", "Upsample"):
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
        if mode not in ("nearest", "linear", "bilinear"):
            return None  # cubic overshoots 0..1
    sources = [i for i in (node.input if node.op_type == "Concat" else node.input[:1]) if i]
    found = [_probability_node(graph, i, depth + 1) for i in sources]
    return found[0] if found and all(found) else None


def output_finding(model, values: Sequence[np.ndarray], measured_on: str, real: bool) -> OutputFinding:
    """What the first output of ``model`` (an onnx ModelProto) holds.

    Args:
        model: the graph deployed (its first output is what tiling stitches).
        values: that output on the inputs measured (one array per batch).
        measured_on: what the inputs were, for the basis ("8 held-out images", "one random input").
        real: whether they were real images (one channel in 0..1 counts only on them).
    """
    out = model.graph.output[0]
    shape = tuple(values[0].shape) if values else tuple(d.dim_value or d.dim_param for d in out.type.tensor_type.shape.dim)
    node = _probability_node(model.graph, out.name)
    arrays = [np.asarray(v) for v in values]
    in_range = bool(arrays) and all(float(a.min()) >= 0.0 and float(a.max()) <= 1.0 for a in arrays)
    if node is not None and node.op_type != "Softmax":
        return OutputFinding(out.name, shape, True, f"{node.op_type} node {node.name or node.output[0]!r} produces it")
    if node is not None and (not arrays or values_are_probabilities(arrays, real=True)):
        return OutputFinding(out.name, shape, True, f"Softmax node {node.name or node.output[0]!r} over its channels")
    if values_are_probabilities(arrays, real):
        over = "" if arrays[0].shape[1] == 1 else f" summing to 1 over {arrays[0].shape[1]} channels"
        return OutputFinding(out.name, shape, True, f"values in 0..1{over} on {measured_on}")
    why = "values in 0..1 but not summing to 1 over the channels" if in_range and arrays[0].shape[1] > 1 else (
        "values in 0..1 on a random input only" if in_range else "values outside 0..1")
    return OutputFinding(out.name, shape, False, f"logits: {why} on {measured_on}, and no Sigmoid or Softmax produces it")


def output_labels(out: np.ndarray, probabilities: bool) -> np.ndarray:
    """(N, C, ...) output -> (N, ...) labels: argmax over C; one channel: 1 where it is past 0.5
    (probabilities) or 0 (logits: sigmoid 0.5), the rule tiling's masks follow."""
    out = np.asarray(out)
    if out.shape[1] == 1:
        return (out[:, 0] > (0.5 if probabilities else 0.0)).astype(np.int64)
    return out.argmax(1)
