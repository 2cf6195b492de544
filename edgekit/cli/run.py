"""`edgekit run`: many scenes on this machine or a Ray cluster, resumable, one ledger row per scene."""
from __future__ import annotations

from pathlib import Path

import click

from edgekit.runtime.open import BACKENDS
from edgekit.cli.console import shows_progress
from edgekit.cli.detect import DETECTION_ONLY, SEGMENTATION_ONLY, check_task_options, detect_config, detection_options
from edgekit.cli.options import DEVICE, RUN_BATCH_HELP, AliasedOption, verbosity_options
from edgekit.run.jobs import BOX_FORMATS
from edgekit.images.geometry import BLENDS


def _summary(s, task: str) -> str:
    boxes = f", {s.boxes} boxes" if task == "detection" else ""
    return (f"{s.scenes} scenes: {s.done} done, {s.skipped} skipped, {s.failed} failed, {s.poisoned} poisoned"
            f"{f' ({s.crashed} worker crashes retried)' if s.crashed else ''}; {s.mpx:.1f} Mpx{boxes} in "
            f"{s.seconds:.1f} s, {s.mpx_per_s:.2f} Mpx/s")


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.argument("scenes")
@click.option("-o", "--out", "output", cls=AliasedOption, old=("--output",), type=click.Path(path_type=Path),
              required=True,
              help="Output folder: masks (or boxes) keep the scenes' relative paths; manifest.jsonl records the run.")
@click.option("--recursive", is_flag=True, help="Also take scenes from sub-folders of SCENES.")
@click.option("--workers", type=int, default=0, help="Workers (0: cores // 4 here, GPUs or CPUs // 4 on Ray).")
@click.option("--threads", type=int, default=0, help="Runner threads per worker (0: cores // workers).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS|auto|local",
              help="Run on Ray: a cluster's address, auto (RAY_ADDRESS or the local node's cluster), or local.")
@click.option("--max-attempts", type=int, default=2, show_default=True,
              help="Tries per scene whose worker dies (segfault, OOM kill) before it is marked poisoned.")
@click.option("--overlap", default=64, show_default=True, help="Pixels shared by neighbouring tiles.")
@click.option("--blend", type=click.Choice(BLENDS), default="gaussian", show_default=True)
@click.option("--batch", type=int, default=None, help=RUN_BATCH_HELP)
@click.option("--backend", type=click.Choice(BACKENDS), default=None, help="Runner (default: the artifact's).")
@DEVICE
@click.option("--probabilities", is_flag=True, help="Also write float16 probabilities (<name>.probs.tif).")
@click.option("--preview", is_flag=True, help="Also write a colour overlay (<name>.preview.png): classes, or boxes.")
@click.option("--format", "box_format", type=click.Choice(tuple(BOX_FORMATS)), default="coco", show_default=True,
              help="Detection: boxes per scene as COCO JSON (<name>.json, pixels), GeoJSON (WGS84), GeoPackage "
                   "(the raster's CRS) or JSON Lines; GeoJSON and GeoPackage need GeoTIFF scenes.")
@detection_options
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.pass_context
@verbosity_options
def run(ctx, artifact, scenes, output, recursive, workers, threads, ray_address, max_attempts, overlap, blend, batch,
        backend, device, probabilities, preview, box_format, conf, det_format, merge, merge_metric, merge_threshold,
        overview, progress) -> None:
    """Run ARTIFACT over SCENES (a folder, a .txt list of paths, or a quoted glob); rerun to resume.

    A segmenter writes a class mask per scene, a detector its boxes (--format).
    """
    from edgekit.artifact.manifest import read_manifest
    from edgekit.run.driver import run_scenes
    from edgekit.run.jobs import RunSettings, find_scenes, jobs_for
    from edgekit.tiling.execute import TileConfig

    task = read_manifest(artifact).task
    check_task_options(ctx, task, SEGMENTATION_ONLY, DETECTION_ONLY + ("box_format",))
    tile = detect_config(ctx.params) if task == "detection" else TileConfig(overlap, blend, batch, backend, device=device)
    settings = RunSettings(tile, probabilities, preview, box_format)
    root, found = find_scenes(scenes, recursive)
    jobs = jobs_for(root, found, output, settings)
    if ray_address:
        from edgekit.run.ray import RayBackend

        runner = RayBackend(ray_address, workers, threads)
    else:
        from edgekit.run.local import LocalBackend, cores

        runner = LocalBackend(workers or max(1, cores() // 4), threads)
    summary = run_scenes(artifact, jobs, output, settings, runner, max_attempts, progress and shows_progress())
    click.echo(_summary(summary, task) + f" -> {output / 'manifest.jsonl'}")
    if summary.failed or summary.poisoned:
        click.get_current_context().exit(1)
