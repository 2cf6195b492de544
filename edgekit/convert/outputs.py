"""Outputs the way models give them: one tensor, a tuple, or a dict, reduced to the one edgekit deploys.

torchvision's segmenters return ``{"out": ..., "aux": ...}``, detection-style and HF models
return tuples or ``ModelOutput`` dicts. :func:`select_output` runs the model once, names every
tensor it returns, and wraps the model so it returns the chosen one: the name given
(``--output NAME``), else the first with the input's spatial layout (N, C, H, W) at the input's
height and width, else the first 4-D one (logits at a lower resolution), else the first tensor.
The others are left out of the deployable graph and the report lists them.
"""
from __future__ import annotations

__all__ = ["OutputChoice", "select_output"]

from dataclasses import dataclass

import torch

from edgekit.errors import ConfigError


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
    if tensor.dim() < 2 or tensor.shape[1] < 2 or not tensor.is_floating_point():
        return False
    t = tensor.detach().float()
    return bool(t.min() >= 0 and t.max() <= 1 and torch.allclose(t.sum(1), torch.ones_like(t.sum(1)), atol=1e-3))


def select_output(model, sample, name: str | None = None):
    """The model reduced to one output tensor, and which one it is.

    Args:
        model: a torch module (or ScriptModule) in eval mode.
        sample: an input batch (N, C, H, W).
        name: the output to keep (``--output``); None chooses as the module docstring says.

    Returns:
        ``(module, OutputChoice)``; the module is ``model`` itself when it returns one tensor.
    """
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


class _Selected(torch.nn.Module):
    """``model`` returning only its output ``chosen`` (a dotted path into tuples and dicts)."""

    def __init__(self, model, chosen: str):
        super().__init__()
        self.model = model
        self.path = chosen.split(".")

    def forward(self, x):
        return _pick(self.model(x), self.path)
