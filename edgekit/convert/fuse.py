"""Stage (cpu target): ONNX Runtime's transformer fusions, kept only when faster and equal.

``onnxruntime.transformers.optimizer`` rewrites transformer blocks into ORT's contrib kernels:
``SkipLayerNormalization`` (residual Add + LayerNorm), ``LayerNormalization``, ``Gelu`` /
``BiasGelu`` and, where it matches the pattern, ``Attention``. Its graph runs only on ONNX
Runtime, so it is a cpu-target stage after simplify. It is applied to graphs with attention
(ViT, DeiT, Swin, DINOv3-layout ViTs) with model type ``vit`` and ``opt_level=0`` (no
hardware-specific ORT layout baked into the file), then verified on a seeded random input and
timed against the unfused graph in turns; the fused graph is kept only when it is within
``rtol`` and faster.

Found on timm 1.0 ViTs (torch 2.14, ORT 1.24): the LayerNorm/residual and GELU fusions match
(ViT-Ti: 24 SkipLayerNormalization, 1 LayerNormalization, 12 Gelu); the Attention fusion does
not, with either exporter and with or without timm's fused attention, because timm computes
q, k, v with one Linear followed by reshape/permute/unbind, a form ORT's ViT attention fusion
does not recognise. The attention stays MatMul + Softmax.
"""
from __future__ import annotations

__all__ = ["FuseResult", "fuse_transformer", "has_attention"]

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.atomic import atomic_file
from edgekit.convert.onnx_check import Timing, count_nodes, load_checked, random_input, run_onnx, time_onnx
from edgekit.metrics import OutputError, output_error


@dataclass(frozen=True)
class FuseResult:
    """What the fusion did and whether it was kept.

    Attributes:
        path: the graph to use next: the fused file when kept, else the input.
        kept: whether the fused graph was kept.
        fused: operator counts the optimizer reports (only those it created).
        latency_ms: {"unfused": ms, "fused": ms} from one interleaved measurement.
        reason: why it was kept or not, in words.
    """

    path: Path
    kept: bool
    nodes_before: int
    nodes_after: int
    error: OutputError
    seconds: float
    fused: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict:
        return {"kept": self.kept, "nodes_before": self.nodes_before, "nodes_after": self.nodes_after,
                "max_rel": self.error.max_rel, "fused": self.fused, "latency_ms": self.latency_ms, "reason": self.reason}


def has_attention(model) -> bool:
    """True when the graph has a Softmax between MatMuls: a transformer's attention."""
    ops = count_nodes(model)
    return ops["Softmax"] > 0 and ops["MatMul"] >= 2


def _optimize(src: Path):
    from onnxruntime.transformers import optimizer

    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return optimizer.optimize_model(str(src), model_type="vit", num_heads=0, hidden_size=0, opt_level=0)
    finally:
        quiet.setLevel(level)


def fuse_transformer(src: Path, out: Path, rtol: float = 1e-3, timing: Timing | None = None,
                     runs: int = 5, threads: int = 0) -> FuseResult:
    """Fuse ``src``'s transformer blocks into ``out``; keep it only if equal within ``rtol`` and faster.

    ``timing`` replaces the default interleaved ORT CPU measurement (tests inject a fake one).
    """
    start = time.perf_counter()
    model = load_checked(src)
    before = sum(count_nodes(model).values())
    feed = random_input(model)
    optimized = _optimize(src)
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    after = len(optimized.model.graph.node)
    if not fused:
        return FuseResult(Path(src), False, before, after, OutputError(0.0, 0.0, 0.0),
                          time.perf_counter() - start, reason="no transformer pattern matched")
    with atomic_file(Path(out)) as tmp:
        optimized.save_model_to_file(str(tmp))
        error = output_error(run_onnx(src, feed), run_onnx(tmp, feed))
        unfused_ms, fused_ms = (timing or (lambda ps: time_onnx(ps, runs, threads)))([Path(src), tmp])
    latency = {"unfused": float(unfused_ms), "fused": float(fused_ms)}
    if error.max_rel > rtol:
        kept, reason = False, f"fused graph differs: relative {error.max_rel:.3g} > {rtol:g}"
    elif fused_ms >= unfused_ms:
        kept, reason = False, f"not faster ({fused_ms:.1f} vs {unfused_ms:.1f} ms)"
    else:
        kept, reason = True, f"{unfused_ms / fused_ms:.2f}x faster, relative error {error.max_rel:.1e}"
    if not kept:
        Path(out).unlink(missing_ok=True)
    return FuseResult(Path(out) if kept else Path(src), kept, before, after, error,
                      time.perf_counter() - start, fused, latency, reason)
