"""Depth cuts: drop the residual blocks that change their input least.

A block is droppable when it sits in an ``nn.Sequential`` called ``blocks`` (timm's ViT, Eva,
FastViT and ConvNeXt stages) and its output has its input's shape, so removing it leaves an
identity. Its importance is how much it changes the stream on the sample,
||block(x) - x|| / ||x||; the least important are dropped first, at most ``fraction`` of each
``blocks`` and never its last block. (The width of a transformer, the other half of the
question, is pruned in prune.py: MLP hidden width and heads.)

Not yet cut: blocks held in an ``nn.ModuleList`` (timm's Eva, so DINOv3): its feature wrapper
takes intermediates by absolute block index, which a cut would have to remap. :func:`can_drop`
says whether a model has anything to cut, so that the search leaves depth plans out instead of
measuring plans that change nothing.
"""
from __future__ import annotations

__all__ = ["DepthReport", "Shallower", "drop_blocks", "can_drop"]

import copy
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class DepthReport:
    fraction: float
    dropped: tuple[str, ...] = ()
    change: dict = field(default_factory=dict)  # block name -> relative change of the stream
    blocks_before: int = 0
    blocks_after: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Shallower:
    model: nn.Module
    report: DepthReport


def _block_lists(model: nn.Module) -> dict[str, nn.Sequential]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Sequential) and n.split(".")[-1] == "blocks"}


def can_drop(model: nn.Module) -> bool:
    """Whether ``model`` has a ``blocks`` list this cut can shorten (two blocks or more)."""
    return any(len(seq) > 1 for seq in _block_lists(model).values())


@torch.no_grad()
def _changes(model: nn.Module, sample: torch.Tensor, names: dict[nn.Module, str]) -> dict[str, float]:
    changes, hooks = {}, []

    def hook(module, inputs, output):
        x = inputs[0]
        if isinstance(output, torch.Tensor) and output.shape == x.shape:
            changes[names[module]] = float((output - x).norm() / x.norm().clamp_min(1e-12))

    for module in names:
        hooks.append(module.register_forward_hook(hook))
    try:
        model(sample)
    finally:
        for h in hooks:
            h.remove()
    return changes


def drop_blocks(model: nn.Module, sample: torch.Tensor, fraction: float) -> Shallower:
    """A copy of ``model`` without the ``fraction`` least important blocks of each ``blocks`` list."""
    model = copy.deepcopy(model).eval()
    lists = _block_lists(model)
    names = {block: f"{ln}.{i}" for ln, seq in lists.items() for i, block in enumerate(seq)}
    changes = _changes(model, sample, names)
    dropped = []
    for list_name, seq in lists.items():
        candidates = [(changes[f"{list_name}.{i}"], i) for i in range(len(seq) - 1) if f"{list_name}.{i}" in changes]
        count = min(math.floor(fraction * len(seq)), len(candidates))
        drop = {i for _, i in sorted(candidates)[:count]}
        if drop:
            kept = [b for i, b in enumerate(seq) if i not in drop]
            parent, _, attr = list_name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, nn.Sequential(*kept))
            dropped += [f"{list_name}.{i}" for i in sorted(drop)]
    total = sum(len(s) for s in lists.values())
    return Shallower(model, DepthReport(fraction, tuple(dropped), {k: round(v, 5) for k, v in changes.items()},
                                        total, total - len(dropped)))
