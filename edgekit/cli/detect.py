"""The detection branch of `edgekit infer`: one image in, boxes out (COCO, GeoJSON, JSON Lines)."""
from __future__ import annotations

import warnings
from pathlib import Path

import click

from edgekit.detect.execute import DetectConfig, DetectResult, detect_image
from edgekit.detect.outputs import DetectionOutputs, DetectionWriter, check_detection_outputs
from edgekit.errors import InputError
from edgekit.artifact.folder import Artifact
from edgekit.images import open_image
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
    """Detect in one image and write its outputs (all or none); returns the summary line."""
    if image.is_dir():
        raise InputError("detection takes one image at a time; give a file, not the folder " + str(image))
    outputs = DetectionOutputs(output, jsonl, preview)
    with open_image(image) as source:
        georef = source.georef if source.georef and source.georef.get("crs") else None
        shape = source.shape
        view = Preview.for_source(source, art.manifest.preprocess.scale) if preview is not None else None
    check_detection_outputs(outputs, georef is not None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with DetectionWriter(outputs, image, shape, art.manifest.classes, georef, view) as writer:
            result = detect_image(art, image, writer, config, preview=view)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    return summary(result, output)
