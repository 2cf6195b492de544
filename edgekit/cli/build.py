"""`edgekit build SOURCE -o OUT`: the whole pipeline, with progress and a closing table."""
from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from edgekit.cli.console import stage_progress

from edgekit.artifact.manifest import PRECISIONS
from edgekit.targets import CPU_RUNTIMES
from edgekit.cli.options import (BATCH, BATCH_HELP, RECIPES_DIR, SIZE, TARGETS_DIR, TASK, AliasedOption,
                                 preprocess_options, verbosity_options)


@click.command()
@click.argument("source")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Output artifact folder.")
@click.option("--target", default="cpu", show_default=True, help="Device profile (see `edgekit targets`).")
@click.option("--runtime", type=click.Choice(CPU_RUNTIMES),
              help="Pin a cpu target's runtime (default: each one installed, measured here, the faster kept).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True)
@click.option("--dla-core", type=click.IntRange(min=0), help="TensorRT targets with DLA (Jetson Orin: 0 or 1): "
              "run the engine on this DLA core, the layers it cannot run on the GPU; fp16/int8 only.")
@click.option("--calib", type=click.Path(path_type=Path), help="Calibration images: a folder, or one large image.")
@click.option("--calib-method", type=click.Choice(["entropy", "max", "percentile"]), default="max", show_default=True)
@click.option("--calib-samples", type=int, help="Images used for calibration (default: all, at most 64).")
@click.option("--calib-memory", type=float, metavar="MB",
              help="Memory one calibration pass may hold (default: a quarter of the available memory).")
@click.option("--calib-tile", type=int, help="Cut calibration tiles of this size from large images.")
@click.option("--val", type=click.Path(path_type=Path), help="Held-out images verifying fp16/int8 (default: <calib>_val).")
@click.option("--verify/--no-verify", default=None,
              help="--no-verify: build a trained model's fp16/int8 without held-out images, or keep one that "
                   "fails its check (with a warning), marked unverified.")
@click.option("--input-size", type=SIZE, help="Input HxW (default: the recipe's).")
@click.option("--batch", type=BATCH, default="1", show_default=True, help=BATCH_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), help="state_dict (.pt/.pth/.safetensors).")
@click.option("--factory-arg", "factory_args", multiple=True, metavar="NAME=VALUE",
              help="Argument of a module:factory source, a Python literal (repeat): weights=None, num_classes=4.")
@click.option("--trust-checkpoint", is_flag=True, default=None,
              help="Load checkpoints or model files holding pickled Python objects (they can run code).")
@click.option("--output-name", "output", cls=AliasedOption, old=("--output",), metavar="NAME",
              help="The model output to deploy when it returns several (default: the first at the input's "
                   "spatial layout).")
@click.option("--input-layout", type=click.Choice(["NCHW", "NHWC"], case_sensitive=False),
              help="Axis order of an ONNX source's input (default: told by its shape; NHWC gets a Transpose in front).")
@TASK
@preprocess_options
@click.option("--latency-runs", type=int, default=5, show_default=True, help="Timed runs per stage (0: none).")
@TARGETS_DIR
@RECIPES_DIR
@verbosity_options
def build(source, out, **options) -> None:
    """Build SOURCE (recipe, timm:<name>, module:factory, TorchScript .pt, torch.export .pt2 or .onnx)
    into a verified artifact."""
    from edgekit.convert.pipeline import BuildConfig, build as run_build

    config = BuildConfig(**{k: v for k, v in options.items() if (v is not None and v != ()) or k == "batch"})
    start = time.perf_counter()
    with stage_progress() as say:
        result = run_build(source, out, config, progress=say)
    wall = time.perf_counter() - start  # the stages' own seconds leave out their timing and the runtime choice
    table = Table(title=f"{source} -> {result.report.target} ({config.precision})")
    for i, name in enumerate(result.report.HEADER):
        table.add_column(name, no_wrap=i != 5, justify="left" if i in (0, 5) else "right")
    for row in result.report.rows():
        table.add_row(*row)
    Console(width=max(Console().width, 110)).print(table)
    for stage in result.report.stages:  # a check that could not run, a fallback: one line each
        if stage.facts.get("warning"):
            click.secho(f"edgekit: warning: {stage.facts['warning']}", fg="yellow", err=True)
    if "int8_slower" in result.report.details:
        click.echo(result.report.details["int8_slower"]["message"])
    if "runtime" in result.report.details:
        from edgekit.convert.report import runtime_text

        click.echo(runtime_text(result.report.details["runtime"]))
    if result.complete:
        click.echo(f"built: {out} ({wall:.0f} s)")
    else:  # the last line says it: no engine here, and the command that builds it
        click.echo(f"stopped before the engine (no TensorRT here): {out} ({wall:.0f} s); "
                   f"finish on the device: {result.report.next_step}")
