"""Stage 1: reparameterize multi-branch blocks and fold BatchNorm into convolutions, proven by outputs.

Multi-branch blocks (MobileOne, RepVGG, FastViT) follow timm's duck-typed protocol
(``reparameterize()`` / ``fuse()`` / ``switch_to_deploy()``), walked as timm's ``reparameterize_model``
walks them, except that a block already in deploy form (its ``reparam_conv`` set) is left alone:
timm's FastViT blocks are not idempotent (a deployed RepMixer has lost the ``mixer`` its
``reparameterize`` reads), and a deploy-form model comes back here whenever an ``edgekit compress``
output or a recipe saved reparameterized is built. Any remaining Conv -> BatchNorm pair whose
order is certain (inside an ``nn.Sequential``, or a module holding ``conv`` and ``bn`` as timm's
ConvNormAct does) is folded here, once, for every model.
"""
from __future__ import annotations

__all__ = ["ReparamReport", "Reparameterized", "reparameterize", "fold_batchnorm"]

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from edgekit.errors import ParityError
from edgekit.metrics import OutputError, output_error


@dataclass(frozen=True)
class ReparamReport:
    """Before/after counts and the output difference on the same inputs."""

    params_before: int
    params_after: int
    modules_before: int
    modules_after: int
    batchnorms_before: int
    batchnorms_after: int
    blocks_reparameterized: int
    batchnorms_folded: int
    error: OutputError
    seconds: float


@dataclass(frozen=True)
class Reparameterized:
    model: nn.Module
    report: ReparamReport


def _counts(model: nn.Module) -> tuple[int, int, int]:
    mods = list(model.modules())
    return (
        sum(p.numel() for p in model.parameters()),
        len(mods),
        sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in mods),
    )


def _fused_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    fused = copy.deepcopy(conv)
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias = nn.Parameter(beta + (bias - bn.running_mean) * scale)
    return fused


def _bn_rest(bn: nn.Module) -> nn.Module:
    """What remains of a BN module once its normalisation is folded (timm's BatchNormAct2d keeps its act)."""
    act = getattr(bn, "act", None)
    drop = getattr(bn, "drop", None)
    rest = [m for m in (drop, act) if isinstance(m, nn.Module) and not isinstance(m, nn.Identity)]
    return nn.Sequential(*rest) if rest else nn.Identity()


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and isinstance(bn, nn.BatchNorm2d)
        and bn.track_running_stats
        and bn.num_features == conv.out_channels
    )


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every Conv2d -> BatchNorm2d pair of certain order, in place. Returns how many."""
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = module._modules[a], module._modules[b]
                if _foldable(conv, bn):
                    module._modules[a] = _fused_conv(conv, bn)
                    module._modules[b] = _bn_rest(bn)
                    folded += 1
        elif _foldable(getattr(module, "conv", None), getattr(module, "bn", None)) and not isinstance(module, nn.Sequential):
            if type(module).__name__ in {"ConvNormAct", "ConvBnAct", "ConvNormActAa", "ConvBn"}:
                module.conv = _fused_conv(module.conv, module.bn)
                module.bn = _bn_rest(module.bn)
                folded += 1
    return folded


def _reparameterizable(model: nn.Module) -> int:
    return sum(
        any(hasattr(m, name) for name in ("reparameterize", "fuse", "switch_to_deploy")) for m in model.modules()
    )


def _deploy(module: nn.Module) -> nn.Module:
    """Every multi-branch block of ``module`` in deploy form, in place; blocks already deployed are skipped."""
    for name, child in module.named_children():
        if getattr(child, "reparam_conv", None) is not None:
            continue
        if hasattr(child, "fuse"):
            child = child.fuse()
            setattr(module, name, child)
        elif hasattr(child, "reparameterize"):
            child.reparameterize()
        elif hasattr(child, "switch_to_deploy"):
            child.switch_to_deploy()
        _deploy(child)
    return module


@torch.no_grad()
def reparameterize(model: nn.Module, sample: torch.Tensor, rtol: float = 1e-3) -> Reparameterized:
    """Deploy form of ``model`` (a copy) and the proof that it computes the same outputs.

    Args:
        model: the trained model (left untouched).
        sample: a representative input batch.
        rtol: largest tolerated difference, relative to the output's largest magnitude.

    Raises:
        ParityError: when the outputs differ by more than ``rtol``.
    """
    start = time.perf_counter()
    model = model.eval()
    before = _counts(model)
    blocks = _reparameterizable(model)
    reference = model(sample)
    deployed = _deploy(copy.deepcopy(model)).eval()
    folded = fold_batchnorm(deployed)
    after = _counts(deployed)
    error = output_error(reference.numpy(), deployed(sample).numpy())
    report = ReparamReport(
        params_before=before[0], params_after=after[0], modules_before=before[1], modules_after=after[1],
        batchnorms_before=before[2], batchnorms_after=after[2], blocks_reparameterized=blocks,
        batchnorms_folded=folded, error=error, seconds=time.perf_counter() - start,
    )
    if error.max_rel > rtol:
        raise ParityError(
            f"reparameterization changed the outputs: max abs {error.max_abs:.3g}, relative {error.max_rel:.3g} "
            f"> tolerance {rtol:g}"
        )
    return Reparameterized(deployed, report)
