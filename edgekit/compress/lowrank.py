"""Low-rank factorization: a Linear or 1x1 convolution W (out x in) becomes two layers through rank r.

W = U S V^T; the first layer is sqrt(S_r) V_r^T (in -> r, no bias), the second U_r sqrt(S_r)
(r -> out, W's bias). By Eckart-Young this is the best rank-r approximation: the Frobenius error
is sqrt(sum of the discarded s_i^2) and the spectral error is s_{r+1}.

Ranks are rounded up to a multiple of ``multiple`` (8: what tensor cores and SIMD widths like).
A layer is factorized only where it saves time. First a MAC guard: r * (in + out) <= ``guard``
* in * out (the pair's MACs per position against the original's). Then, given a sample input, a
latency check on the target's runtime: the layer and its pair are exported alone, at the shape the
layer sees in the model, and timed in turns on ONNX Runtime's CPU provider; the split is kept
only when the pair is faster. Both figures go into the report, per layer. Fewer MACs are not
always less time: two thin matrix products pay twice the memory traffic and kernel overhead.
"""
from __future__ import annotations

__all__ = ["LowRankSettings", "LowRankReport", "Factorized", "factorize", "factorize_layer", "svd_rank",
           "time_layers"]

import copy
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgekit.errors import ConfigError


@dataclass(frozen=True)
class LowRankSettings:
    """Rank budget.

    Attributes:
        rank_ratio: rank kept, as a fraction of min(in, out), before rounding up.
        multiple: ranks are rounded up to a multiple of this.
        guard: factorize only when the pair costs at most this fraction of the original's MACs.
        min_features: layers narrower than this (in or out) are left.
        latency_runs: timed runs of each layer and its pair (0: the MAC guard alone decides).
    """

    rank_ratio: float = 0.5
    multiple: int = 8
    guard: float = 0.8
    min_features: int = 32
    latency_runs: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.rank_ratio <= 1:
            raise ConfigError(f"rank ratio must be in (0, 1], not {self.rank_ratio}")
        if self.multiple < 1:
            raise ConfigError(f"rank multiple must be at least 1, not {self.multiple}")


@dataclass(frozen=True)
class LowRankReport:
    settings: dict
    layers: dict = field(default_factory=dict)  # name -> {in, out, rank, energy_kept, ms_whole, ms_split}
    skipped: int = 0                             # candidate layers the MAC guard kept whole
    params_before: int = 0
    params_after: int = 0
    seconds: float = 0.0
    slower: dict = field(default_factory=dict)   # name -> {rank, ms_whole, ms_split}: splits measured slower

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Factorized:
    model: nn.Module
    report: LowRankReport


def _matrix(layer: nn.Module) -> torch.Tensor:
    w = layer.weight.detach()
    return w.reshape(w.shape[0], w.shape[1]) if isinstance(layer, nn.Conv2d) else w


def _is_candidate(layer: nn.Module) -> bool:
    if isinstance(layer, nn.Linear):
        return True
    return (isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.groups == 1
            and layer.stride == (1, 1) and layer.padding in ((0, 0), "valid") and layer.dilation == (1, 1))


def svd_rank(features_in: int, features_out: int, settings: LowRankSettings) -> int:
    """The rank kept for a layer: ratio of min(in, out), rounded up to the multiple, capped at full rank."""
    full = min(features_in, features_out)
    rank = math.ceil(settings.rank_ratio * full / settings.multiple) * settings.multiple
    return min(max(rank, settings.multiple), full)


@torch.no_grad()
def factorize_layer(layer: nn.Module, rank: int) -> tuple[nn.Sequential, float]:
    """``layer`` as two layers through ``rank``, and the fraction of sum(s^2) kept."""
    w = _matrix(layer).double()
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    root = s[:rank].sqrt()
    first_w, second_w = root[:, None] * vh[:rank], u[:, :rank] * root[None, :]
    if isinstance(layer, nn.Linear):
        first = nn.Linear(layer.in_features, rank, bias=False)
        second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None)
        first.weight.copy_(first_w)
        second.weight.copy_(second_w)
    else:
        first = nn.Conv2d(layer.in_channels, rank, 1, bias=False)
        second = nn.Conv2d(rank, layer.out_channels, 1, bias=layer.bias is not None)
        first.weight.copy_(first_w[:, :, None, None])
        second.weight.copy_(second_w[:, :, None, None])
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    pair = nn.Sequential(first, second).to(layer.weight.dtype)
    return pair, float((s[:rank] ** 2).sum() / (s**2).sum().clamp_min(1e-30))


def _features(layer: nn.Module) -> tuple[int, int]:
    return (layer.in_features, layer.out_features) if isinstance(layer, nn.Linear) else (layer.in_channels, layer.out_channels)


LayerTiming = Callable[[nn.Module, nn.Module, tuple[int, ...]], tuple[float, float]]
"""(ms of the layer, ms of its pair) at an input shape, measured on the target's runtime."""


def time_layers(layer: nn.Module, pair: nn.Module, shape: tuple[int, ...], runs: int = 5, threads: int = 0) -> tuple[float, float]:
    """Median ms of ``layer`` and of ``pair``, each exported alone to ONNX and timed in turns on ONNX Runtime's CPU provider."""
    from edgekit.convert.onnx_check import time_onnx

    x = torch.randn(*shape)
    with tempfile.TemporaryDirectory(prefix="edgekit-lowrank-") as tmp:
        paths = [Path(tmp) / "whole.onnx", Path(tmp) / "split.onnx"]
        for module, path in zip((layer, pair), paths):
            torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, input_names=["input"], opset_version=17)
        whole, split = time_onnx(paths, runs, threads)
    return float(whole), float(split)


def _input_shapes(model: nn.Module, sample: torch.Tensor, names: set[str]) -> dict[str, tuple[int, ...]]:
    """The input shape each named layer sees in one forward pass of ``sample``."""
    shapes, hooks = {}, []

    def keep(name: str):
        def hook(_module, args) -> None:  # a pre-hook that returned a value would replace the inputs
            shapes.setdefault(name, tuple(args[0].shape))
        return hook

    for name, layer in model.named_modules():
        if name in names:
            hooks.append(layer.register_forward_pre_hook(keep(name)))
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def factorize(model: nn.Module, settings: LowRankSettings = LowRankSettings(),
              exclude: set[str] | None = None, sample: torch.Tensor | None = None,
              timing: LayerTiming | None = None) -> Factorized:
    """A copy of ``model`` with every worthwhile Linear / 1x1 convolution split (see module docstring).

    Args:
        exclude: module names left whole (e.g. the output layer).
        sample: an input batch; with it (and ``settings.latency_runs`` > 0) each split is timed
            against its layer and kept only when faster.
        timing: replaces :func:`time_layers` (tests inject a fake one).
    """
    start = time.perf_counter()
    model = copy.deepcopy(model).eval()
    before = sum(p.numel() for p in model.parameters())
    exclude = exclude or set()
    candidates, skipped = {}, 0
    for name, layer in list(model.named_modules()):
        if name in exclude or not _is_candidate(layer):
            continue
        fin, fout = _features(layer)
        if min(fin, fout) < settings.min_features:
            continue
        rank = svd_rank(fin, fout, settings)
        if rank * (fin + fout) > settings.guard * fin * fout:
            skipped += 1
            continue
        candidates[name] = (layer, rank)
    measure = sample is not None and settings.latency_runs > 0
    shapes = _input_shapes(model, sample, set(candidates)) if measure else {}
    timing = timing or (lambda a, b, shape: time_layers(a, b, shape, settings.latency_runs))
    layers, slower = {}, {}
    for name, (layer, rank) in candidates.items():
        pair, energy = factorize_layer(layer, rank)
        figures = {}
        if measure and name in shapes:
            whole_ms, split_ms = timing(layer, pair, shapes[name])
            figures = {"ms_whole": round(whole_ms, 4), "ms_split": round(split_ms, 4)}
            if split_ms >= whole_ms:
                slower[name] = {"rank": rank, **figures}
                continue
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, pair)
        fin, fout = _features(layer)
        layers[name] = {"in": fin, "out": fout, "rank": rank, "energy_kept": round(energy, 6), **figures}
    after = sum(p.numel() for p in model.parameters())
    return Factorized(model, LowRankReport(asdict(settings), layers, skipped, before, after,
                                           time.perf_counter() - start, slower))
