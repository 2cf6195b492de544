"""Residual-stream pruning of FastViT's convolutional stages (the ``fastvit`` adapter's ``embed``).

In a deploy-form FastViT stage of RepMixer blocks, one width runs through everything: the stage's
input projection (the stem's last block, or the downsampling PatchEmbed's 1x1 convolution), every
block's depthwise token mixer and depthwise MLP convolution with its BatchNorm, every ``fc2``
output and ``fc1`` input, the LayerScale ``gamma`` of each block, and whatever reads the stage's
output (the next stage's downsampling convolution, an FPN head's lateral). Torch-Pruning
(DepGraph) finds that group once the ``gamma`` parameters are handed to it, but cannot prune it:

* the next stage's downsampling convolution is *grouped* (one group per input channel, two
  outputs each): DepGraph counts it as a channel grouping and removes nothing, and its in-channel
  handler would slice the wrong weight axis. Here a dropped stream channel removes the whole group
  of that convolution (its input and its outputs) and the next 1x1 convolution's matching inputs;
* its magnitude importance fails on the in-channel side of a depthwise convolution (a weight of
  one input channel per group); the out-channel side carries the same weights, so that item is
  left out of the ranking.

Stages with attention are left: FastViT's attention reshapes its output to its input's width with
a fixed head size. Channels are ranked by the group's L2 weight magnitude (Torch-Pruning's
GroupMagnitudeImportance) and each pruned stream keeps a multiple of ``round_to`` channels.
"""
from __future__ import annotations

__all__ = ["prune_fastvit_streams"]

import copy
import math
import warnings

import torch
from torch import nn


def _stages(model: nn.Module) -> list[nn.Module]:
    """FastViT stages of RepMixer blocks only, in deploy form (the ones whose stream can be cut)."""
    out = []
    for module in model.modules():
        if type(module).__name__ != "FastVitStage":
            continue
        blocks = list(module.blocks)
        if blocks and all(type(b).__name__ == "RepMixerBlock" and hasattr(b.token_mixer, "reparam_conv")
                          for b in blocks) and isinstance(module.pos_emb, nn.Identity):
            out.append(module)
    return out


def _is_grouped(layer: nn.Module) -> bool:
    """A grouped convolution that is not depthwise (FastViT's downsampling kernel: k outputs per input)."""
    return isinstance(layer, nn.Conv2d) and 1 < layer.groups and not layer.groups == layer.in_channels == layer.out_channels


def _is_depthwise(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Conv2d) and layer.groups > 1 and layer.groups == layer.in_channels == layer.out_channels


def _subgroup(group, keep):
    """``group`` with only the items ``keep`` accepts (the items themselves: DepGraph set their root
    indices; Torch-Pruning 1.6.1 keeps them in ``_group``)."""
    part = copy.copy(group)
    part._group = [item for item in group.items if keep(item)]
    return part


def _ranked(tp, DG, group, width: int) -> list[int]:
    """Stream channels from least to most important (depthwise in-channel items left out, see above)."""
    def ranked(item) -> bool:
        layer = item.dep.target.module
        return not _is_grouped(layer) and not (_is_depthwise(layer) and not DG.is_out_channel_pruning_fn(item.dep.handler))

    importance = tp.importance.GroupMagnitudeImportance(p=2)(_subgroup(group, ranked))
    return torch.argsort(importance[:width]).tolist()


def _drop_groups(tp, DG, conv: nn.Conv2d, channels: list[int]) -> None:
    """Remove the groups of a grouped ``conv`` fed by the dropped input ``channels``, with their outputs
    and everything that reads those outputs."""
    per = conv.out_channels // conv.groups
    outputs = sorted(c * per + j for c in channels for j in range(per))
    DG.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=outputs).prune()
    conv.in_channels -= len(channels)
    conv.groups -= len(channels)


def prune_fastvit_streams(model: nn.Module, sample: torch.Tensor, ratio: float, round_to: int | None, tp) -> dict:
    """Narrow the stream of every convolutional FastViT stage of ``model`` (in place) by ``ratio``.

    Args:
        tp: the ``torch_pruning`` module, as :mod:`edgekit.compress.prune` imports it (with the
            install hint where it is missing).

    Returns:
        stage name -> [width before, width after].
    """
    stages = _stages(model)
    if not stages:
        return {}
    names = {m: n for n, m in model.named_modules()}
    gammas = [(p, 0) for stage in stages for n, p in stage.named_parameters() if n.endswith("gamma")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DG = tp.DependencyGraph().build_dependency(model, sample, unwrapped_parameters=gammas)
    widths = {}
    for stage in stages:
        root = stage.blocks[0].mlp.fc2
        width = root.out_channels
        step = round_to or 1
        keep = max(step, math.ceil(width * (1 - ratio) / step) * step)
        if keep >= width:
            continue
        group = DG.get_pruning_group(root, tp.prune_conv_out_channels, idxs=list(range(width)))
        drop = sorted(_ranked(tp, DG, group, width)[: width - keep])
        group = DG.get_pruning_group(root, tp.prune_conv_out_channels, idxs=drop)
        grouped = {it.dep.target.module for it in group.items if _is_grouped(it.dep.target.module)}
        for conv in grouped:
            _drop_groups(tp, DG, conv, drop)
        _subgroup(group, lambda item: item.dep.target.module not in grouped).prune()
        widths[names[stage]] = [width, keep]
    return widths
