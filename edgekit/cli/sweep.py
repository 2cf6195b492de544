"""`edgekit sweep RECIPE...`: build and profile recipes x precisions x sizes; table, Markdown, JSON, plot."""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from edgekit.cli.console import stage_progress
from edgekit.cli.options import RECIPES_DIR, SIZE, TARGETS_DIR, TASK, preprocess_options, verbosity_options


def _sizes(ctx, param, value: str | None):
    if not value:
        return (None,)
    return tuple(SIZE.convert(v.strip(), param, ctx) for v in value.split(",") if v.strip())


@click.command()
@click.argument("recipes", nargs=-1, required=True)
@click.option("--target", default="cpu", show_default=True, help="Device profile (measured on this machine).")
@click.option("--input-size", "sizes", callback=_sizes, help="Comma-separated sizes, e.g. 512,1024 (default: each recipe's).")
@click.option("--precision", "precisions", default="fp32", show_default=True, help="Comma-separated: fp32,fp16,int8,bf16 (bf16: OpenVINO, where the CPU has AVX-512 BF16 or AMX).")
@click.option("--calib", type=click.Path(path_type=Path), help="Calibration images (int8).")
@click.option("--val", type=click.Path(path_type=Path),
              help="Validation images: with masks/, mIoU of trained recipes; a detector's mAP against its first row's boxes.")
@TASK
@click.option("--duration", type=float, default=2.0, show_default=True,
              help="Seconds of timed runs per artifact, split across the rounds.")
@click.option("--rounds", type=int, default=3, show_default=True,
              help="Timing rounds; each times every artifact in turn (a row's p50: the median of its rounds').")
@click.option("--keep", type=click.Path(path_type=Path), help="Keep the artifacts in this folder.")
@click.option("--plot", type=click.Path(path_type=Path), help="PNG: latency vs accuracy (or size), Pareto front marked.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the table as JSON.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Write the table as Markdown.")
@preprocess_options
@TARGETS_DIR
@RECIPES_DIR
@verbosity_options
def sweep(recipes, sizes, precisions, duration, plot, json_out, markdown, targets_dir, recipes_dir, **options) -> None:
    """Build and profile RECIPES at each precision and input size on one target."""
    from edgekit.recipes import load_recipe
    from edgekit.sweep import SweepConfig, plot_sweep, sweep as run_sweep
    from edgekit.targets import load_target

    if targets_dir:  # a profile of the user's folder is passed on by its file
        options["target"] = str(load_target(options["target"], targets_dir).path)
    if recipes_dir:
        recipes = [r if ":" in r or r.endswith(".onnx") else str(load_recipe(r, recipes_dir).path) for r in recipes]

    chosen = tuple(p.strip() for p in precisions.split(",") if p.strip())
    config = SweepConfig(precisions=chosen, sizes=sizes, duration_s=duration, **options)
    with stage_progress() as say:
        report = run_sweep(list(recipes), config, progress=say)
    table = Table(title=f"sweep on {report.target} ({report.device})")
    for i, name in enumerate(report.HEADER):
        table.add_column(name, justify="left" if i < 3 else "right")
    for row in report.table_rows():
        table.add_row(*row)
    Console(width=max(Console().width, 110)).print(table)
    if markdown:
        Path(markdown).write_text(report.to_markdown())
    if json_out:
        report.write_json(json_out)
    if plot:
        plot_sweep(report, plot)
    written = [str(p) for p in (markdown, json_out, plot) if p]
    if written:
        click.echo(f"wrote {', '.join(written)}")
    if report.rows:  # the final line
        best = min(report.rows, key=lambda r: r.p50_ms)
        click.echo(f"{len(report.rows)} artifacts on {report.target}; fastest: {best.recipe} {best.precision} at "
                   f"{best.input_hw[0]}x{best.input_hw[1]}, p50 {best.p50_ms:.1f} ms")
