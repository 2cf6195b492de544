"""Structured pruning on Torch-Pruning (DepGraph), with one adapter per timm family.

An adapter names the *roots* a family may lose output channels from; every other Conv/Linear is
ignored (its output width is kept), so a dimension the adapter does not name is never cut. What
each family allows, and why the rest is left:

* ``fastvit`` (FastViT): the hidden width of each ConvMlp (``fc1`` out, ``fc2`` in); with ``embed``
  also the residual stream of each stage of RepMixer blocks (edgekit.compress.stream: the
  LayerScale ``gamma`` and the grouped downsampling convolution need handling Torch-Pruning lacks).
  The attention stages' stream is kept: their attention reshapes to the input width.
* ``vit`` (timm VisionTransformer and friends with ``timm.layers.Attention``): MLP hidden width
  and whole attention heads (``num_heads`` / ``attn_dim`` are updated after pruning, since
  recent timm reshapes by those fixed attributes); with ``embed`` also the embedding width, the
  residual stream: the patch embedding, every attention ``proj`` and MLP ``fc2`` output, with
  ``cls_token``, ``pos_embed``, register tokens and LayerScale ``gamma`` handed to Torch-Pruning
  as unwrapped parameters, and every LayerNorm and consumer following.
* ``eva`` (DINOv3 in timm): MLP hidden width only; its fused qkv with RoPE is mis-traced, so heads
  are left.
* ``convnext``: the MLP hidden width of each block (the stream has ``gamma`` layer scale).
* ``cnn`` (anything else, e.g. a reparameterized MobileOne or a ResNet): every convolution except
  the output layer; Torch-Pruning couples residual adds itself.

A :class:`~edgekit.nets.segmenter.Segmenter`'s FPN head is pruned with the backbone (all its
convolutions but the classifier). Pruning works on a reparameterized copy (edgekit.convert.reparam)
so multi-branch blocks are single convolutions first.
"""
from __future__ import annotations

__all__ = ["PruneSettings", "PruneReport", "Pruned", "prune", "family_of", "count_macs"]

import copy
import time
import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from edgekit.errors import BackendUnavailableError, ConfigError

IMPORTANCES = ("magnitude", "taylor")
SCOPES = ("global", "stage")


@dataclass(frozen=True)
class PruneSettings:
    """How much to prune and how to rank channels.

    Attributes:
        ratio: fraction of each prunable width to remove (per layer with ``scope="stage"``, an
            average over all prunable layers with ``scope="global"``).
        importance: ``magnitude`` (L2 of the weights) or ``taylor`` (|weight x gradient| of the
            distillation loss against the model's own argmax on the sample).
        scope: ``global`` ranks every channel together; ``stage`` cuts each layer by ``ratio``.
        heads: also prune whole attention heads (vit family) by ``ratio``.
        embed: fraction of the residual stream's width to remove (0: keep): the embedding of the vit
            family, the convolutional stages' streams of the fastvit family; other families keep it.
        round_to: keep widths multiples of this (None: any width).
        max_ratio: no layer loses more than this fraction (global scope).
    """

    ratio: float = 0.25
    importance: str = "magnitude"
    scope: str = "stage"
    heads: bool = True
    round_to: int | None = 8
    max_ratio: float = 0.75
    embed: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.ratio < 1:
            raise ConfigError(f"pruning ratio must be in [0, 1), not {self.ratio}")
        if not 0 <= self.embed < 1:
            raise ConfigError(f"embedding pruning ratio must be in [0, 1), not {self.embed}")
        if self.importance not in IMPORTANCES:
            raise ConfigError(f"importance {self.importance!r}: choose one of {', '.join(IMPORTANCES)}")
        if self.scope not in SCOPES:
            raise ConfigError(f"pruning scope {self.scope!r}: choose one of {', '.join(SCOPES)}")


@dataclass(frozen=True)
class PruneReport:
    """What pruning did, in numbers."""

    family: str
    settings: dict
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    layers: dict = field(default_factory=dict)  # module name -> [width before, width after]
    heads: dict = field(default_factory=dict)   # attention name -> [heads before, heads after]
    left: tuple[str, ...] = ()                  # dimensions not pruned, and why
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Pruned:
    model: nn.Module
    report: PruneReport


def _torch_pruning():
    try:
        import torch_pruning
    except ImportError:
        raise BackendUnavailableError("pruning needs Torch-Pruning: pip install 'edgekit[compress]' "
                                      "(torch-pruning==1.6.1)") from None
    return torch_pruning


# ---- families ----------------------------------------------------------------------------------
def family_of(model: nn.Module) -> str:
    """The adapter for ``model``: fastvit, eva, vit, convnext or cnn."""
    names = {type(m).__module__ + "." + type(m).__name__ for m in model.modules()}
    if any(n.startswith("timm.models.fastvit.") for n in names):
        return "fastvit"
    if any(n.startswith("timm.models.eva.") for n in names):
        return "eva"
    if any(n == "timm.layers.attention.Attention" for n in names):
        return "vit"
    if any(n.startswith("timm.models.convnext.") for n in names):
        return "convnext"
    return "cnn"


LEFT = {
    "fastvit": ("residual stream width (LayerScale2d, attention reshape by C, RepMixer) kept",
                "attention heads kept (FastViT's attention reshapes to the stream width)"),
    "vit": ("embedding width (residual stream: pos_embed, cls_token, LayerNorms) kept",),
    "eva": ("embedding width kept", "attention heads kept (fused qkv with RoPE is mis-traced)"),
    "convnext": ("residual stream width (layer scale gamma) kept",),
    "cnn": (),
}


def _mlp_fc1(model: nn.Module) -> list[nn.Module]:
    """The first layer of every MLP (timm Mlp/ConvMlp/GlobalResponseNormMlp), by attribute."""
    roots = []
    for module in model.modules():
        fc1, fc2 = getattr(module, "fc1", None), getattr(module, "fc2", None)
        if isinstance(fc1, (nn.Linear, nn.Conv2d)) and isinstance(fc2, (nn.Linear, nn.Conv2d)):
            if not isinstance(fc1, nn.Conv2d) or fc1.groups == 1:
                roots.append(fc1)
    return roots


def _output_layers(model: nn.Module) -> set[nn.Module]:
    """Conv/Linear layers that produce the model's outputs (never pruned): the last one registered,
    and any named like a classifier."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    out = {layers[-1][1]} if layers else set()
    out |= {m for n, m in layers if n.split(".")[-1] in ("classifier", "fc", "head") or n.endswith("head.fc")}
    return out


def _head_convs(model: nn.Module) -> list[nn.Module]:
    head = getattr(model, "head", None)
    if head is None or not hasattr(model, "backbone"):
        return []
    return [m for m in head.modules() if isinstance(m, nn.Conv2d)]


def _roots(model: nn.Module, family: str) -> list[nn.Module]:
    if family == "cnn":
        roots = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    else:
        roots = _mlp_fc1(model) + _head_convs(model)
    outputs = _output_layers(model)
    return [m for m in roots if m not in outputs]


def _attentions(model: nn.Module) -> dict[nn.Module, nn.Module]:
    """qkv Linear -> its timm Attention module (vit family)."""
    from timm.layers import Attention

    return {m.qkv: m for m in model.modules() if isinstance(m, Attention) and isinstance(m.qkv, nn.Linear)}


# ---- counting -----------------------------------------------------------------------------------
def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, sample: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass (Torch-Pruning's counter: Conv, Linear, norms)."""
    tp = _torch_pruning()

    macs, _ = tp.utils.count_ops_and_params(model, sample)
    return int(macs)


def _widths(model: nn.Module) -> dict[str, int]:
    return {n: (m.out_channels if isinstance(m, nn.Conv2d) else m.out_features)
            for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


# ---- pruning --------------------------------------------------------------------------------------
def _importance(settings: PruneSettings):
    tp = _torch_pruning()

    if settings.importance == "taylor":
        return tp.importance.GroupTaylorImportance()
    return tp.importance.GroupMagnitudeImportance(p=2)


def _taylor_gradients(model: nn.Module, sample: torch.Tensor) -> None:
    """Gradients of the cross-entropy against the model's own argmax (no labels needed)."""
    model.zero_grad()
    with torch.enable_grad():
        out = model(sample)
        target = out.detach().argmax(1)
        nn.functional.cross_entropy(out, target).backward()


def _prune_module_copy(model: nn.Module, sample: torch.Tensor, settings: PruneSettings, family: str):
    tp = _torch_pruning()

    roots = set(_roots(model, family))
    attn = _attentions(model) if family == "vit" and settings.heads else {}
    ignored = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in roots and m not in attn]
    ignored += [a.proj for a in attn.values()]
    kwargs = dict(
        importance=_importance(settings), pruning_ratio=settings.ratio, global_pruning=settings.scope == "global",
        max_pruning_ratio=settings.max_ratio, ignored_layers=ignored, round_to=settings.round_to,
    )
    if attn:
        kwargs.update(num_heads={q: a.num_heads for q, a in attn.items()}, prune_num_heads=True,
                      prune_head_dims=False, head_pruning_ratio=settings.ratio)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unwrapped layer-scale parameters: never roots here, see LEFT
        pruner = tp.pruner.MetaPruner(model, sample, **kwargs)
        if settings.importance == "taylor":
            _taylor_gradients(model, sample)
        pruner.step()
    model.zero_grad(set_to_none=True)
    heads = {}
    for qkv, a in attn.items():
        before = a.num_heads
        a.num_heads = qkv.out_features // (3 * a.head_dim)
        a.attn_dim = a.num_heads * a.head_dim
        heads[_name_of(model, a)] = [before, a.num_heads]
    return heads


def _stream_producers(model: nn.Module) -> list[nn.Module]:
    """The layers that write a ViT's residual stream: patch embedding, attention proj, MLP fc2."""
    from timm.layers import Attention

    producers = [m.proj for m in model.modules() if isinstance(m, Attention)]
    producers += [m.fc2 for m in model.modules() if isinstance(getattr(m, "fc2", None), nn.Linear)]
    producers += [m.proj for m in model.modules() if type(m).__name__ == "PatchEmbed" and isinstance(m.proj, nn.Conv2d)]
    return producers


def _prune_embedding(model: nn.Module, sample: torch.Tensor, settings: PruneSettings) -> None:
    """Narrow a ViT's residual stream by ``settings.embed``: one coupled group, every other width kept."""
    tp = _torch_pruning()

    producers = set(_stream_producers(model))
    ignored = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in producers]
    unwrapped = [(p, p.dim() - 1) for n, p in model.named_parameters()
                 if n.split(".")[-1] in ("cls_token", "pos_embed", "reg_token", "dist_token")]
    unwrapped += [(p, 0) for n, p in model.named_parameters() if n.endswith(".gamma") and p.dim() == 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MetaPruner(model, sample, importance=_importance(settings), pruning_ratio=settings.embed,
                                      ignored_layers=ignored, unwrapped_parameters=unwrapped, round_to=settings.round_to)
        if settings.importance == "taylor":
            _taylor_gradients(model, sample)
        pruner.step()
    model.zero_grad(set_to_none=True)
    for m in model.modules():  # timm keeps the width in attributes other code reads (heads, features)
        patch = getattr(m, "patch_embed", None)
        if patch is not None and hasattr(m, "embed_dim"):
            width = patch.proj.out_channels
            m.embed_dim = width
            for attr in ("num_features", "head_hidden_size"):
                if hasattr(m, attr):
                    setattr(m, attr, width)


def _name_of(model: nn.Module, module: nn.Module) -> str:
    return next(n for n, m in model.named_modules() if m is module)


def prune(model: nn.Module, sample: torch.Tensor, settings: PruneSettings = PruneSettings()) -> Pruned:
    """A pruned copy of ``model`` (eval mode; the original is untouched), proven to keep its output shape.

    Args:
        model: a deploy-form model (reparameterize first: edgekit.convert.reparam).
        sample: an input batch (its shape is the traced shape; Taylor importance uses its gradients).
        settings: ratio, importance and scope.
    """
    start = time.perf_counter()
    model = copy.deepcopy(model).eval()
    family = family_of(model)
    with torch.no_grad():
        ref_shape = tuple(model(sample).shape)
    params, macs, widths = count_params(model), count_macs(model, sample), _widths(model)
    heads = _prune_module_copy(model, sample, settings, family) if settings.ratio > 0 else {}
    left = LEFT[family]
    if settings.embed and family == "vit":
        _prune_embedding(model, sample, settings)
        left = tuple(x for x in left if not x.startswith("embedding width"))
    elif settings.embed and family == "fastvit":
        from edgekit.compress.stream import prune_fastvit_streams

        streams = prune_fastvit_streams(model, sample, settings.embed, settings.round_to, _torch_pruning())
        left = (f"residual stream narrowed in {len(streams)} convolutional stages; the attention stages' "
                "stream kept (their attention reshapes to the input width)",) + tuple(
                    x for x in left if not x.startswith("residual stream"))
    elif settings.embed:
        left = left + (f"embedding width kept: the {family} adapter does not prune it",)
    model.eval()
    with torch.no_grad():
        shape = tuple(model(sample).shape)
    if shape != ref_shape:  # a bug in an adapter, not a user error
        raise RuntimeError(f"pruning changed the output shape {ref_shape} -> {shape}")
    after = _widths(model)
    layers = {n: [w, after[n]] for n, w in widths.items() if n in after and after[n] != w}
    report = PruneReport(family, asdict(settings), params, count_params(model), macs, count_macs(model, sample),
                         layers, heads, left, time.perf_counter() - start)
    return Pruned(model, report)
