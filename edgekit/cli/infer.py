"""`edgekit infer`: tiled inference of an artifact over a huge image, or a folder of them."""
from __future__ import annotations

from pathlib import Path

import click

from edgekit.artifact.folder import load_artifact
from edgekit.cli.console import shows_progress
from edgekit.cli.detect import (DETECTION_ONLY, SEGMENTATION_ONLY, check_task_options, detect_config, detection_options,
                                run_detection)
from edgekit.cli.folders import check_images, each_image
from edgekit.cli.options import DEVICE, RUN_BATCH_HELP, AliasedOption, verbosity_options
from edgekit.tiling.execute import InferResult, TileConfig, TileOutputs, check_outputs, infer_image
from edgekit.images.geometry import BLENDS
from edgekit.images import list_images
from edgekit.runtime.open import BACKENDS, open_runner


def summary(r: InferResult) -> str:
    """One line per image: size, tiles, time, throughput, memory, output."""
    h, w, _ = r.shape
    skipped = f" ({r.skipped_tiles} nodata tiles skipped)" if r.skipped_tiles else ""
    return (f"{r.image.name}: {w}x{h} px, {r.tiles} tiles of {r.tile[1]}x{r.tile[0]}{skipped}, batch {r.batch}, "
            f"{r.backend}: {r.seconds:.1f} s, {r.tiles_per_s:.1f} tiles/s, {r.mpx_per_s:.2f} Mpx/s, "
            f"peak RSS {r.peak_rss_mb:.0f} MiB -> {r.outputs.mask}")


def _folder_outputs(images: list[Path], out: Path, probs: Path | None, preview: Path | None) -> list[TileOutputs]:
    """One mask (same format as a .tif/.png input, else .tif) per image, named after it, in each folder."""
    for folder in (out, probs, preview):
        if folder is not None and not folder.is_dir():
            if not folder.parent.is_dir():
                check_outputs(TileOutputs(folder / "x"))  # the missing parent's one-line error
            folder.mkdir()
    suffix = {".png": ".png", ".tiff": ".tif"}
    return [TileOutputs(
        out / f"{p.stem}{suffix.get(p.suffix.lower(), '.tif')}",
        probs / f"{p.stem}.tif" if probs else None,
        preview / f"{p.stem}.png" if preview else None,
    ) for p in images]


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.argument("image", type=click.Path(path_type=Path))
@click.option("-o", "--out", "output", cls=AliasedOption, old=("--output",), type=click.Path(path_type=Path),
              required=True, help="Class mask (uint8 .tif or .png), or boxes (detection); a folder when IMAGE is "
              "a folder.")
@click.option("--overlap", default=64, show_default=True, help="Pixels shared by neighbouring tiles.")
@click.option("--blend", type=click.Choice(BLENDS), default="gaussian", show_default=True,
              help="How overlapping tiles are merged (weights probabilities, not class ids).")
@click.option("--batch", type=int, default=None, help=RUN_BATCH_HELP)
@click.option("--backend", type=click.Choice(BACKENDS), default=None, help="Runner (default: the artifact's).")
@click.option("--threads", type=int, default=0, help="Runner threads (0: the backend's default).")
@DEVICE
@click.option("--probabilities", type=click.Path(path_type=Path), default=None, help="Also write float16 probabilities (.tif).")
@click.option("--preview", type=click.Path(path_type=Path), default=None, help="Also write a downsampled colour overlay (.png).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@detection_options
@click.option("--jsonl", type=click.Path(path_type=Path), default=None,
              help="Detection: also stream final boxes to this JSON Lines file as they come.")
@click.pass_context
@verbosity_options
def infer(ctx, artifact, image, output, overlap, blend, batch, backend, threads, device, probabilities, preview,
          progress, conf, det_format, merge, merge_metric, merge_threshold, jsonl, overview) -> None:
    """Run ARTIFACT over IMAGE (TIFF/BigTIFF/GeoTIFF, PNG/JPEG, .npy, or a folder of them) tile by tile.

    A detection artifact writes boxes: -o boxes.json (COCO, pixels), boxes.geojson (WGS84, GeoTIFF
    input), boxes.gpkg (GeoPackage in the raster's CRS, GeoTIFF input) or boxes.jsonl (JSON Lines, streamed).
    """
    art = load_artifact(artifact)
    check_task_options(ctx, art.manifest.task, SEGMENTATION_ONLY, DETECTION_ONLY + ("jsonl",))
    if art.manifest.task == "detection":
        click.echo(run_detection(art, image, output, detect_config(ctx.params, threads), jsonl, preview))
        return
    config = TileConfig(overlap, blend, batch, backend, threads, progress and shows_progress(), device=device)
    if not image.is_dir():
        click.echo(summary(infer_image(art, image, TileOutputs(output, probabilities, preview), config)))
        return
    images = list_images(image)
    with open_runner(art, backend, threads, device=device) as runner:
        check_images(images, art, runner, overlap, batch, blend)  # a bad image stops here, nothing written
        outputs = dict(zip(images, _folder_outputs(images, output, probabilities, preview)))
        click.echo(each_image(images, lambda p: summary(infer_image(art, p, outputs[p], config, runner=runner)),
                              output))
