"""Depth cuts: drop the residual blocks that change their input least.

A block is droppable when it sits in a list called ``blocks`` and its output has its input's
shape, so removing it leaves an identity. The lists cut are every ``nn.Sequential`` named
``blocks`` (timm's ViT, FastViT and ConvNeXt stages) and an ``nn.ModuleList`` named ``blocks``
whose owner has timm's ``forward_intermediates`` (Eva, so DINOv3: it iterates over the list and
takes intermediates by position). A block's importance is how much it changes the stream on the
sample, ||block(x) - x|| / ||x||; the least important are dropped first, at most ``fraction`` of
each list and never its last block.

A timm feature wrapper (``features_only=True``, FeatureGetterNet) takes intermediates by
*absolute* block index: the blocks it takes are never dropped, and its ``out_indices`` are
remapped to the shortened list. Left uncut, and said by :func:`can_drop`: Eva with per-depth
("mixed") RoPE, whose rotary table is indexed by block. (The width of a transformer, the other
half of the question, is pruned in prune.py: MLP hidden width, heads and embedding width.)
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


def _block_lists(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> every ``blocks`` list this cut may shorten (see the module's docstring)."""
    lists = {}
    for name, module in model.named_modules():
        if name.split(".")[-1] != "blocks" or not isinstance(module, (nn.Sequential, nn.ModuleList)) or len(module) < 2:
            continue
        owner = _owner(model, name)
        if isinstance(module, nn.ModuleList) and not hasattr(owner, "forward_intermediates"):
            continue  # a plain ModuleList may be indexed by position anywhere in its owner's forward
        if getattr(owner, "rope_mixed", False):
            continue  # one rotary table per block, by index
        lists[name] = module
    return lists


def _owner(model: nn.Module, list_name: str) -> nn.Module:
    parent = list_name.rpartition(".")[0]
    return model.get_submodule(parent) if parent else model


def _getter_of(model: nn.Module, owner: nn.Module) -> nn.Module | None:
    """The timm feature wrapper that takes ``owner``'s intermediates by block index, if any."""
    return next((m for m in model.modules() if getattr(m, "model", None) is owner and hasattr(m, "out_indices")), None)


def _taken(getter: nn.Module | None, length: int) -> list[int]:
    """Absolute indices of the blocks a feature wrapper returns (timm accepts negative ones)."""
    if getter is None:
        return []
    indices = getter.out_indices
    if isinstance(indices, int):  # the last n blocks
        return list(range(length - indices, length))
    return [i + length if i < 0 else i for i in indices]


def can_drop(model: nn.Module) -> bool:
    """Whether ``model`` has a ``blocks`` list this cut can shorten (two blocks or more)."""
    return bool(_block_lists(model))


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
        owner = _owner(model, list_name)
        getter = _getter_of(model, owner)
        taken = _taken(getter, len(seq))
        candidates = [(changes[f"{list_name}.{i}"], i) for i in range(len(seq) - 1)
                      if f"{list_name}.{i}" in changes and i not in taken]
        count = min(math.floor(fraction * len(seq)), len(candidates))
        drop = {i for _, i in sorted(candidates)[:count]}
        if not drop:
            continue
        kept = [b for i, b in enumerate(seq) if i not in drop]
        setattr(owner, list_name.rpartition(".")[2], type(seq)(kept) if isinstance(seq, nn.ModuleList) else nn.Sequential(*kept))
        if getter is not None:
            getter.out_indices = [i - sum(d < i for d in drop) for i in taken]
        dropped += [f"{list_name}.{i}" for i in sorted(drop)]
    total = sum(len(s) for s in lists.values())
    return Shallower(model, DepthReport(fraction, tuple(dropped), {k: round(v, 5) for k, v in changes.items()},
                                        total, total - len(dropped)))
