"""Constraint-driven search over compression plans, by level, with every figure cached on disk.

A :class:`Plan` is a depth cut, a pruning ratio and a rank ratio, applied in that order to the
reparameterized model. Levels widen the plans tried:

    1: pruning only (the adapter's widths, and the residual stream where the adapter narrows it:
       a ViT's embedding, FastViT's convolutional stages), the cheapest search;
    2: pruning and low-rank factorization;
    3: also depth cuts (and a longer recovery, chosen by the caller).

Each plan's figures (latency of its exported ONNX on the CPU runtime, timed in turns with the
original and the other plans, size, params, MACs) are measured once and kept in a
:class:`~edgekit.cache.MeasurementCache` under a key of the source's hash, the plans, the
input shape and the runtime version, so a rerun measures nothing twice. Plans that meet the
speed/size goal are tried from the least compressed; an
infeasible goal is a one-line ConfigError with the best reachable figures.
"""
from __future__ import annotations

__all__ = ["Plan", "Goal", "LEVELS", "plans_for", "apply_plan", "measure_plans", "feasible_plans", "PlanFigures"]

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from edgekit.errors import ConfigError, InfeasibleError
from edgekit.cache import MeasurementCache, content_key


@dataclass(frozen=True)
class Plan:
    """One compression: fractions of blocks dropped, of widths pruned and of a ViT's embedding width
    pruned, and the rank ratio (None: no SVD)."""

    prune: float = 0.0
    rank: float | None = None
    depth: float = 0.0
    embed: float = 0.0

    @property
    def name(self) -> str:
        parts = [f"prune{round(100 * self.prune)}"] if self.prune else []
        parts += [f"rank{round(100 * self.rank)}"] if self.rank else []
        parts += [f"depth{round(100 * self.depth)}"] if self.depth else []
        parts += [f"embed{round(100 * self.embed)}"] if self.embed else []
        return "+".join(parts) or "original"

    def key(self) -> dict:
        """The plan as a cache key: its fractions, and the version of each transform it uses."""
        return {**asdict(self), **({"depth_cut": DEPTH_CUT_VERSION} if self.depth else {})}


# Bumped when a transform's output changes for the same plan, so cached figures and recoveries of
# the old output are not reused (depth 2: Eva/DINOv3 and feature-wrapped ViTs are cut; before, not).
DEPTH_CUT_VERSION = 2


_PRUNE = tuple(Plan(p) for p in (0.125, 0.25, 0.375, 0.5, 0.625))
_STREAM = (Plan(0.5, embed=0.25), Plan(0.5, embed=0.5), Plan(0.625, embed=0.5))  # the residual stream too: see plans_for
_RANK = tuple(Plan(p, r) for p in (0.25, 0.5) for r in (0.5, 0.25)) + (Plan(0.5, 0.5, embed=0.5), Plan(0.5, 0.25, embed=0.5))
_DEEP = (tuple(Plan(p, r, 0.25) for p in (0.25, 0.5) for r in (None, 0.5))  # depth cuts, alone and with a stream cut
         + (Plan(0.25, embed=0.25), Plan(0.25, None, 0.25, 0.25), Plan(0.5, None, 0.25, 0.25)))
LEVELS = {1: _PRUNE + _STREAM, 2: _PRUNE + _STREAM + _RANK, 3: _PRUNE + _STREAM + _RANK + _DEEP}
STREAM_FAMILIES = ("vit", "fastvit")  # the adapters that narrow the residual stream (edgekit.compress.prune)


def plans_for(level: int, family: str, depth: bool = True) -> tuple[Plan, ...]:
    """The level's plans that mean something for ``family`` (residual-stream cuts: the adapters in
    STREAM_FAMILIES; depth cuts only where ``depth``: the model has a block list the cut can shorten)."""
    return tuple(p for p in LEVELS[level] if (not p.embed or family in STREAM_FAMILIES) and (depth or not p.depth))


@dataclass(frozen=True)
class Goal:
    """What the compressed model must reach on the target (one of the speed/size limits, or several)."""

    max_drop: float = 1.0
    speedup: float | None = None
    max_latency_ms: float | None = None
    max_size_mb: float | None = None

    def __post_init__(self) -> None:
        if self.speedup is None and self.max_latency_ms is None and self.max_size_mb is None:
            raise ConfigError("give a goal: --speedup X, --max-latency MS or --max-size MB")
        if self.speedup is not None and self.speedup <= 1:
            raise ConfigError(f"--speedup must be above 1, not {self.speedup}")
        if self.max_drop < 0:
            raise ConfigError(f"--max-drop must be at least 0 points, not {self.max_drop}")

    def misses(self, figures: dict, base: dict) -> list[str]:
        """What ``figures`` fails of this goal (empty: it holds), against the original's ``base``."""
        out = []
        speed = base["latency_ms"] / figures["latency_ms"]
        if self.speedup is not None and speed < self.speedup:
            out.append(f"{speed:.2f}x < {self.speedup:g}x")
        if self.max_latency_ms is not None and figures["latency_ms"] > self.max_latency_ms:
            out.append(f"{figures['latency_ms']:.1f} ms > {self.max_latency_ms:g} ms")
        if self.max_size_mb is not None and figures["size_mb"] > self.max_size_mb:
            out.append(f"{figures['size_mb']:.1f} MB > {self.max_size_mb:g} MB")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PlanFigures:
    plan: Plan
    figures: dict


def apply_plan(model, sample, plan: Plan, importance: str = "magnitude") -> tuple[object, dict]:
    """``plan`` applied to a copy of the deploy-form ``model``: (compressed model, what each step did)."""
    from edgekit.compress.depth import drop_blocks
    from edgekit.compress.lowrank import LowRankSettings, factorize
    from edgekit.compress.prune import PruneSettings, _output_layers, prune

    details: dict = {}
    if plan.depth:
        shallow = drop_blocks(model, sample, plan.depth)
        model, details["depth"] = shallow.model, shallow.report.to_dict()
    pruned = prune(model, sample, PruneSettings(ratio=plan.prune, importance=importance, embed=plan.embed))
    model, details["prune"] = pruned.model, pruned.report.to_dict()
    if plan.rank:
        outputs = {n for n, m in model.named_modules() if m in _output_layers(model)}
        factorized = factorize(model, LowRankSettings(rank_ratio=plan.rank), exclude=outputs, sample=sample)
        model, details["lowrank"] = factorized.model, factorized.report.to_dict()
    return model, details


def _static(model, sample, path: Path) -> dict:
    from edgekit.compress.prune import count_macs, count_params

    return {"size_mb": round(path.stat().st_size / 1e6, 3), "params": count_params(model),
            "macs": count_macs(model, sample)}


def _measure_all(model, sample, plans: tuple[Plan, ...], runs: int, threads: int, importance: str, runtime: str,
                 say: Callable[[str], None]) -> dict:
    from edgekit.convert.export import ExportSpec, export_onnx
    from edgekit.convert.onnx_check import time_onnx

    with tempfile.TemporaryDirectory(prefix="edgekit-compress-") as tmp:
        paths, static = [], []
        for i, plan in enumerate(plans):
            say(f"export {plan.name}")
            candidate = apply_plan(model, sample, plan, importance)[0]
            paths.append(export_onnx(candidate, Path(tmp) / f"plan{i}.onnx", ExportSpec(tuple(sample.shape[2:]))).path)
            static.append(_static(candidate, sample, paths[-1]))
        say(f"time {len(paths)} graphs in turns, {runs} rounds ({runtime})")
        latencies = time_onnx(paths, runs=runs, threads=threads, runtime=runtime)
    return {"figures": [{"latency_ms": round(ms, 3), **s} for ms, s in zip(latencies, static)]}


def measure_plans(model, sample, plans: tuple[Plan, ...], cache: MeasurementCache, key: dict, runs: int = 5,
                  threads: int = 0, importance: str = "magnitude", runtime: str = "onnxruntime",
                  progress: Callable[[str], None] | None = None) -> tuple[dict, list[PlanFigures]]:
    """The original's figures and each plan's: latency (ms, median on the CPU ``runtime``), size (MB),
    params and MACs. Every graph is exported first, then all are timed in turns (original, plan 1,
    plan 2, ..., again), so that a shared machine's drifting load falls on each alike: timed one
    after another, the demo model's plans came out 10-20 % apart from run to run. The set is
    cached as one entry; a rerun of the same level measures nothing."""
    import onnxruntime

    full_key = content_key(key, [p.key() for p in plans], importance, list(sample.shape), onnxruntime.__version__,
                           runtime, runs, threads, "in-turns")
    data = cache.measure("compress", full_key, lambda: _measure_all(model, sample, (Plan(),) + tuple(plans), runs,
                                                                      threads, importance, runtime,
                                                                      progress or (lambda _m: None)))
    base, *rest = data["figures"]
    return base, [PlanFigures(p, f) for p, f in zip(plans, rest)]


def feasible_plans(base: dict, measured: list[PlanFigures], goal: Goal, level: int) -> list[PlanFigures]:
    """Plans meeting ``goal``'s speed/size limits, least compressed (most MACs, then slowest) first.

    Raises:
        InfeasibleError: when none does; the message has the best reachable figures.
    """
    ok = [m for m in measured if not goal.misses(m.figures, base)]
    if ok:
        return sorted(ok, key=lambda m: (-m.figures.get("macs", 0), -m.figures["latency_ms"]))
    fast = min(measured, key=lambda m: m.figures["latency_ms"])
    small = min(measured, key=lambda m: m.figures["size_mb"])
    raise InfeasibleError(
        f"no level-{level} plan meets the goal ({'; '.join(goal.misses(fast.figures, base))}): best reachable "
        f"{base['latency_ms'] / fast.figures['latency_ms']:.2f}x ({fast.figures['latency_ms']:.1f} ms, {fast.plan.name}), "
        f"smallest {small.figures['size_mb']:.1f} MB; relax the goal or raise --level (nothing written)"
    )
