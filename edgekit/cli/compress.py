"""`edgekit compress SOURCE --images DIR|IMG --val DIR --speedup 2 -o OUT`: a smaller network, recovered."""
from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli.console import stage_progress
from edgekit.cli.options import SIZE, TASK, AliasedOption, preprocess_options, verbosity_options


@click.command()
@click.argument("source")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Output folder (buildable).")
@click.option("--images", type=click.Path(path_type=Path), required=True,
              help="Training images: a folder, or one large image cut into tiles. No labels needed.")
@click.option("--val", type=click.Path(path_type=Path), required=True, help="Held-out images; masks in VAL/masks.")
@click.option("--target", default="cpu", show_default=True, help="Device profile (see `edgekit targets`).")
@click.option("--max-drop", type=float, default=1.0, show_default=True, help="Points of the task metric lost, at most.")
@click.option("--speedup", type=float, help="Faster than the original on the target, at least (2.0).")
@click.option("--max-latency", help="Per batch on the target, at most (80ms, 0.08s).")
@click.option("--max-size", type=float, help="ONNX model file, at most (MB).")
@click.option("--level", type=click.IntRange(1, 3), default=1, show_default=True,
              help="1: light pruning; 2: + low-rank factorization; 3: + depth cuts, longer recovery.")
@click.option("--importance", type=click.Choice(["magnitude", "taylor"]), default="magnitude", show_default=True)
@click.option("--input-size", type=SIZE, help="Input HxW (default: the recipe's).")
@click.option("--checkpoint", type=click.Path(path_type=Path), help="state_dict (.pt/.pth/.safetensors).")
@TASK
@preprocess_options
@click.option("--train-samples", type=int, default=64, show_default=True, help="Training images (tiles) used.")
@click.option("--val-samples", type=int, help="Validation images used (default: all).")
@click.option("--steps", type=int, default=200, show_default=True, help="Recovery steps at most (level 3: twice).")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Recovery learning rate.")
@click.option("--train-batch", "batch", cls=AliasedOption, old=("--batch",), type=click.IntRange(min=1), default=2,
              show_default=True, help="Training images per recovery step (distillation), not an inference batch.")
@click.option("--max-candidates", type=click.IntRange(min=1), default=3, show_default=True,
              help="Plans meeting the goal recovered at most, least compressed first, until one holds --max-drop.")
@click.option("--time-budget", "time_budget_min", type=float, default=60.0, show_default=True,
              help="Minutes of recovery: a further plan is tried only while one more attempt fits.")
@click.option("--sparsity", type=click.Choice(["2:4"]), default=None,
              help="Also make the network 2:4 sparse (TensorRT targets: Ampere/Orin sparse tensor cores).")
@click.option("--latency-runs", type=int, default=5, show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), help="Figure cache (default: ~/.cache/edgekit/optimize).")
@click.option("--no-cache", is_flag=True, help="Measure everything again and keep nothing.")
@verbosity_options
def compress(source, out, max_drop, speedup, max_latency, max_size, steps, lr, cache, no_cache, **options) -> None:
    """Prune, factorize and cut SOURCE to meet the goal on the target, recovered by distillation."""
    from edgekit.compress.distill import DistillSettings
    from edgekit.compress.pipeline import CompressConfig, compress as run_compress
    from edgekit.compress.search import Goal
    from edgekit.cache import default_cache_dir
    from edgekit.optimize.constraints import parse_latency

    goal = Goal(max_drop, speedup, parse_latency(max_latency), max_size)
    config = CompressConfig(**{k: v for k, v in options.items() if v is not None},
                            recovery=DistillSettings(steps=steps, lr=lr),
                            cache=None if no_cache else (cache or default_cache_dir()))
    with stage_progress() as say:  # the recovery's steps, loss and held-out score as they come
        result = run_compress(source, out, goal, config, progress=say)
    r = result.report
    acc = r.accuracy
    for k, t in enumerate(r.tried, 1):  # every attempt, the last one the chosen plan
        if "speedup" in t:
            click.echo(f"attempt {k} {t['plan']}: {t['speedup']:.2f}x, held-out {100 * t['metric']:.2f} "
                       f"({-t['drop']:+.2f} points), {t['steps']} steps, {t['seconds'] / 60:.1f} min")
    click.echo(f"{r.plan}: {r.speedup:.2f}x ({r.before['latency_ms']:.1f} -> {r.after['latency_ms']:.1f} ms, {r.latency_kind}), "
               f"params {r.before['params']:,} -> {r.after['params']:,}, {acc['metric']} {100 * acc['before']:.2f} -> "
               f"{100 * acc['after']:.2f} -> {out} (build it: edgekit build {out} --target {r.target})")
