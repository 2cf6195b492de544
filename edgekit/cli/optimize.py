"""`edgekit optimize SOURCE -o OUT`: constraints in, the fastest artifact that holds them out."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from edgekit.cli.console import stage_progress
from edgekit.cli.options import RECIPES_DIR, SIZE, TARGETS_DIR, TASK, preprocess_options, verbosity_options


def _csv(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


@click.command()
@click.argument("source")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Output artifact folder.")
@click.option("--target", default="cpu", show_default=True, help="Device profile (see `edgekit targets`).")
@click.option("--calib", type=click.Path(path_type=Path), help="Calibration images (folder, or one large image).")
@click.option("--val", type=click.Path(path_type=Path), required=True, help="Validation images; masks in VAL/masks.")
@click.option("--masks", type=click.Path(path_type=Path), help="Ground-truth masks elsewhere than VAL/masks.")
@click.option("--max-drop", type=float, default=0.5, show_default=True, help="Points of the task metric lost, at most.")
@click.option("--max-latency", help="Per batch on the target, at most (40ms, 0.04s).")
@click.option("--min-throughput", help="Images per second on the target, at least (25img/s).")
@click.option("--max-size", type=float, help="Deployable model file, at most (MB).")
@click.option("--input-size", type=SIZE, help="Input HxW (default: the recipe's).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images per inference call: the artifact's batch, and what --max-latency limits.")
@click.option("--checkpoint", type=click.Path(path_type=Path), help="state_dict (.pt/.pth/.safetensors).")
@TASK
@preprocess_options
@click.option("--candidates", default="fp16,int8,dynamic,bf16", show_default=True,
              help="Whole-model kinds besides fp32 (bf16: on OpenVINO, where the CPU has AVX-512 BF16 or AMX).")
@click.option("--calib-methods", help="int8 calibration methods (default: every one the target takes).")
@click.option("--calib-samples", type=int, default=16, show_default=True)
@click.option("--val-samples", type=int, help="Validation images per candidate (default: all).")
@click.option("--max-regions", type=int, default=24, show_default=True, help="Regions probed for sensitivity.")
@click.option("--latency-runs", type=int, default=5, show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), help="Measurement cache (default: ~/.cache/edgekit/optimize).")
@click.option("--no-cache", is_flag=True, help="Measure everything again and keep nothing.")
@click.option("--no-search", is_flag=True, help="Whole-model candidates only, no mixed precision.")
@click.option("--compress", "compress_level", type=click.IntRange(1, 3), default=None,
              help="First compress the network at this level (half of --max-drop), written to OUT.compressed.")
@click.option("--images", type=click.Path(path_type=Path), help="--compress: recovery images (default: --calib).")
@click.option("--compress-speedup", type=float, default=1.5, show_default=True, help="--compress: its speed goal.")
@click.option("--compress-steps", type=int, default=200, show_default=True, help="--compress: recovery steps at most.")
@TARGETS_DIR
@RECIPES_DIR
@verbosity_options
def optimize(source, out, max_drop, max_latency, min_throughput, max_size, candidates, calib_methods, cache, no_cache,
             no_search, compress_level, images, compress_speedup, compress_steps, **options) -> None:
    """Find the fastest artifact of SOURCE that holds the constraints on the target."""
    from edgekit.optimize import Constraints, OptimizeConfig, optimize as run_optimize
    from edgekit.cache import default_cache_dir
    from edgekit.optimize.constraints import parse_latency, parse_throughput

    constraints = Constraints(max_drop, parse_latency(max_latency), parse_throughput(min_throughput), max_size)
    config = OptimizeConfig(**{k: v for k, v in options.items() if v is not None}, candidates=_csv(candidates) or (),
                            calib_methods=_csv(calib_methods), cache=None if no_cache else (cache or default_cache_dir()), search=not no_search)
    compressed = None
    with stage_progress() as say:
        if compress_level:
            from edgekit.optimize.compressed import CompressPlan, compress_then_optimize

            plan = CompressPlan(compress_level, images, compress_speedup, compress_steps)
            compressed, result = compress_then_optimize(source, out, constraints, config, plan, say)
        else:
            result = run_optimize(source, out, constraints, config, progress=say)
    if compressed is not None:
        r = compressed.report
        click.echo(f"compressed: {r.plan}, {r.speedup:.2f}x faster than the original, {r.accuracy['drop']:.2f} points "
                   f"lost -> {compressed.out} (then optimized with {max(max_drop - r.accuracy['drop'], 0):.2f} points left)")
    report = result.report
    legend = report.latency_legend()
    table = Table(title=f"{source} -> {report.target}: {report.metric_name}",
                  caption="\n".join(["latency *: estimated, not measured on the target", *legend]) if legend else None,
                  caption_justify="left")
    for i, name in enumerate(report.HEADER):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in report.rows():
        table.add_row(*row)
    Console(width=max(Console().width, 110)).print(table)
    c = report.chosen
    click.echo(f"decided by: {report.decided_by}")
    click.echo(f"chosen: {c.name}, {c.latency_ms:.1f} ms{' (estimated)' if c.latency_estimated else ''}, "
               f"{c.drop:.2f} points lost, {len(c.float_nodes)} nodes in float -> {out} ({report.seconds:.0f} s; "
               f"{report.cache['hits']} measurements reused)")  # the final line
