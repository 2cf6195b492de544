"""`edgekit compile OUTDIR|BUNDLE`: build the TensorRT engine or ONNX Runtime plan on this device."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import click

from edgekit.artifact.manifest import read_manifest
from edgekit.cli.console import stage_progress
from edgekit.cli.options import TARGETS_DIR, verbosity_options
from edgekit.compile.choice import CHOICE_KEY
from edgekit.compile.engine_cache import cache_line
from edgekit.compile.stage import ORT_LEVELS, CompileSettings, CompileWarning, compile_artifact
from edgekit.convert.report import runtime_text
from edgekit.targets import CPU_RUNTIMES


@click.command("compile")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Compiled artifact folder (default: in place, "
              "or the bundle's name without .tar.gz).")
@click.option("--target", help="Target profile; must be the one the artifact was built for.")
@click.option("--workspace", type=click.IntRange(min=1), help="TensorRT builder workspace in MB (default: the target's).")
@click.option("--dla/--no-dla", default=None, help="Run on a DLA core with GPU fallback, FP16/INT8 only "
              "(default: as the build requested; --no-dla: the GPU only).")
@click.option("--dla-core", type=click.IntRange(min=0),
              help="The DLA core to run on (Jetson Orin: 0 or 1); implies --dla.")
@click.option("--timing-cache", type=click.Path(path_type=Path), help="TensorRT tactic timing cache, read and "
              "updated (default: the artifact's own, per TensorRT version and GPU).")
@click.option("--no-timing-cache", is_flag=True, help="Build without a tactic timing cache.")
@click.option("--cuda-graph/--no-cuda-graph", default=None, help="Run the engine as a replayed CUDA graph per "
              "input shape (recorded: infer, run and profile use it; default: off).")
@click.option("--rebuild", is_flag=True, help="Build the engine even if the artifact's engine cache has one for "
              "this device, graph and settings.")
@click.option("--optimization", type=click.Choice(list(ORT_LEVELS)), default="extended", show_default=True,
              help="Highest ONNX Runtime level baked into the plan; a level whose results leave the precision's "
                   "budget falls back to the next, saying so.")
@click.option("--runtime", type=click.Choice(CPU_RUNTIMES),
              help="Pin a cpu target's runtime (default: the one the build pinned, else each one measured here, "
                   "the faster kept).")
@TARGETS_DIR
@verbosity_options
def compile(source: Path, out: Path | None, target: str | None, workspace: int | None, dla: bool | None,
            dla_core: int | None, timing_cache: Path | None, no_timing_cache: bool, cuda_graph: bool | None,
            rebuild: bool, optimization: str, runtime: str | None, targets_dir: Path | None) -> None:
    """Compile an artifact folder or bundle for this device (TensorRT engine, ONNX Runtime plan or OpenVINO IR)."""
    settings = CompileSettings(workspace_mb=workspace, dla=dla, dla_core=dla_core, timing_cache=timing_cache,
                               use_timing_cache=not no_timing_cache, cuda_graph=cuda_graph, rebuild=rebuild,
                               optimization=optimization, targets_dir=targets_dir, runtime=runtime)
    started = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CompileWarning)
        with stage_progress(f"compiling {source} (a TensorRT engine takes minutes)"):
            folder = compile_artifact(source, target=target, out=out, settings=settings)
    for w in (w for w in caught if issubclass(w.category, CompileWarning)):
        click.secho(f"edgekit: warning: {w.message}", fg="yellow", err=True)
    m = read_manifest(folder)
    check = m.session.get(m.backend, {}).get("verification", {})
    error = (f"; max error vs the ONNX {check['max_abs_error']:.3g} (budget {check['limit']:.3g}, {check['input']})"
             if check.get("limit") is not None else "")
    if m.backend == "tensorrt":
        click.echo(cache_line(folder, m.session["tensorrt"]["engine_key"], started))
    if CHOICE_KEY in m.session:
        click.echo(runtime_text(m.session[CHOICE_KEY]))
    click.echo(f"{m.target} ({m.backend}, {m.precision}): {folder / m.engine_file}{error}")  # the final line
