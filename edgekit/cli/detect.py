"""The detection branch of `edgekit infer`: one image in, boxes out (COCO, GeoJSON, JSON Lines)."""
from __future__ import annotations

import warnings
from pathlib import Path

import click

from edgekit.detect.execute import DetectConfig, DetectResult, detect_image
from edgekit.detect.outputs import DetectionOutputs, DetectionWriter, check_detection_outputs
from edgekit.errors import InputError
from edgekit.artifact.folder import Artifact
from edgekit.images import list_images, open_image
from edgekit.tiling.preview import Preview


def summary(r: DetectResult, output: Path) -> str:
    """One line: size, tiles, format, boxes, time, memory, output."""
    h, w, _ = r.shape
    skipped = f" ({r.skipped_tiles} nodata tiles skipped)" if r.skipped_tiles else ""
    overview = f" ({r.overview_boxes} large ones from the overview pass)" if r.overview_boxes else ""
    return (f"{r.image.name}: {w}x{h} px, {r.tiles} tiles of {r.tile[1]}x{r.tile[0]}{skipped}, {r.det_format} outputs, "
            f"{r.boxes} boxes{overview}, {r.backend}: {r.seconds:.1f} s, peak RSS {r.peak_rss_mb:.0f} MiB -> {output}")


def run_detection(art: Artifact, image: Path, output: Path, config: DetectConfig, jsonl: Path | None,
                  preview: Path | None) -> str:
    """Detect in one image, or in every image of a folder, and write the outputs (each image's all
    or none); returns the summary, a line per image."""
    if image.is_dir():
        return _run_folder(art, image, output, config, jsonl, preview)
    return _run_one(art, image, DetectionOutputs(output, jsonl, preview), config)


def _run_one(art: Artifact, image: Path, outputs: DetectionOutputs, config: DetectConfig, runner=None) -> str:
    with open_image(image) as source:
        georef = source.georef if source.georef and source.georef.get("crs") else None
        shape = source.shape
        view = Preview.for_source(source, art.manifest.preprocess.scale) if outputs.preview is not None else None
    check_detection_outputs(outputs, georef is not None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with DetectionWriter(outputs, image, shape, art.manifest.classes, georef, view) as writer:
            result = detect_image(art, image, writer, config, runner=runner, preview=view)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    return summary(result, outputs.path)


def _run_folder(art: Artifact, folder: Path, output: Path, config: DetectConfig, jsonl: Path | None,
                preview: Path | None) -> str:
    """Every image of ``folder`` through one runner: ``OUTPUT/<name>.json`` (COCO, pixels), and
    ``<name>.jsonl`` / ``<name>.png`` in the --jsonl / --preview folders."""
    images = list_images(folder)
    for out in (output, jsonl, preview):
        if out is not None and out.suffix:
            raise InputError(f"for a folder of images, -o, --jsonl and --preview name folders, not files: {out}")
        if out is not None and not out.is_dir():
            if not out.parent.is_dir():
                raise InputError(f"output folder {out.parent} does not exist; create it first")
            out.mkdir()
    lines = []
    with art.runner(config.backend, config.threads) as runner:
        for path in images:
            outputs = DetectionOutputs(output / f"{path.stem}.json", jsonl / f"{path.stem}.jsonl" if jsonl else None,
                                       preview / f"{path.stem}.png" if preview else None)
            lines.append(_run_one(art, path, outputs, config, runner))
            click.echo(lines[-1])
    return f"{len(images)} images -> {output}"
