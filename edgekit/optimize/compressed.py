"""`optimize --compress`: a smaller network first, then the fastest precision of it, in one accuracy budget.

`edgekit compress` runs with half of ``--max-drop`` (and its own speed goal); the compressed
network, written beside OUT as ``OUT.compressed`` (buildable, with its report), is then optimized
with what is left of the budget: the points compress actually lost are subtracted, so the drop of
the final artifact against the original stays within ``--max-drop``.
"""
from __future__ import annotations

__all__ = ["CompressPlan", "compress_then_optimize", "compressed_folder"]

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from edgekit.errors import ConfigError


@dataclass(frozen=True)
class CompressPlan:
    """The compress half of the search.

    Attributes:
        level: compress level (1, 2 or 3).
        images: training images for the recovery (a folder or one large image).
        speedup: compress's speed goal against the original, on the target.
        steps: recovery steps at most.
        max_size_mb: a size goal instead of (or with) the speed-up.
    """

    level: int = 1
    images: Path | None = None
    speedup: float | None = 1.5
    steps: int = 200
    max_size_mb: float | None = None


def compressed_folder(out: Path) -> Path:
    """Where the compressed network goes: beside OUT, so OUT stays one sealed artifact."""
    out = Path(out)
    return out.with_name(out.name + ".compressed")


def compress_then_optimize(source: str, out: Path, constraints, config, plan: CompressPlan,
                           progress: Callable[[str], None] | None = None):
    """(CompressResult, OptimizeResult): ``source`` compressed, then optimized within one budget."""
    from edgekit.compress.distill import DistillSettings
    from edgekit.compress.pipeline import CompressConfig, compress
    from edgekit.compress.search import Goal
    from edgekit.optimize.pipeline import optimize

    say = progress or (lambda _m: None)
    images = plan.images or config.calib
    if images is None:
        raise ConfigError("--compress recovers the smaller network on images: give --images FOLDER (or --calib)")
    compress_config = CompressConfig(images=Path(images), val=Path(config.val), target=config.target, level=plan.level,
                                     input_size=config.input_size, checkpoint=config.checkpoint, task=config.task,
                                     recovery=DistillSettings(steps=plan.steps), latency_runs=config.latency_runs,
                                     cache=config.cache, inputs=config.inputs)
    goal = Goal(max_drop=constraints.max_drop / 2, speedup=plan.speedup, max_size_mb=plan.max_size_mb)
    compressed = compress(source, compressed_folder(out), goal, compress_config, lambda m: say(f"compress: {m}"))
    spent = max(compressed.report.accuracy["drop"], 0.0)
    left = replace(constraints, max_drop=max(constraints.max_drop - spent, 0.0))
    result = optimize(str(compressed_folder(out)), out, left, replace(config, checkpoint=None), progress)
    return compressed, result
