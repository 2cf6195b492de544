"""The detection branch of `edgekit infer` (one image in, boxes out: COCO, GeoJSON, JSON Lines), and
the detection options `edgekit infer` and `edgekit run` share."""
from __future__ import annotations

import warnings
from pathlib import Path

import click

from edgekit.cli.console import stage_progress
from edgekit.runtime.decode import FORMATS
from edgekit.detect.execute import DetectConfig, DetectResult, write_detections
from edgekit.detect.merge import METRICS, MODES, MergeConfig
from edgekit.detect.outputs import DetectionOutputs
from edgekit.errors import InputError
from edgekit.artifact.folder import Artifact
from edgekit.images import list_images
from edgekit.runtime.open import open_runner


SEGMENTATION_ONLY = ("blend", "probabilities")
DETECTION_ONLY = ("conf", "det_format", "merge", "merge_metric", "merge_threshold", "overview")

_OPTIONS = (
    click.option("--conf", type=float, default=0.25, show_default=True, help="Detection: minimum box score."),
    click.option("--det-format", type=click.Choice(FORMATS), default=None,
                 help="Detection: the model's output layout (default: read from its output shapes)."),
    click.option("--merge", type=click.Choice(MODES), default="nms", show_default=True,
                 help="Detection: merge boxes across tiles: keep the best (nms) or grow it to the union (greedy)."),
    click.option("--merge-metric", type=click.Choice(METRICS), default="ios", show_default=True,
                 help="Detection: match boxes by intersection over the smaller box (ios) or over the union (iou)."),
    click.option("--merge-threshold", type=float, default=0.5, show_default=True, help="Detection: match threshold."),
    click.option("--overview", is_flag=True, default=False,
                 help="Detection: also run the whole image shrunk to one tile, for objects larger than a tile."),
)


def detection_options(command):
    """Add the detection options (DETECTION_ONLY) to a command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def detect_config(params: dict, threads: int = 0) -> DetectConfig:
    """The :class:`DetectConfig` of a command's parsed options (``ctx.params``)."""
    merge = MergeConfig(params["merge"], params["merge_metric"], params["merge_threshold"])
    return DetectConfig(params["overlap"], params["conf"], merge=merge, det_format=params["det_format"],
                        batch=params["batch"], backend=params["backend"], threads=threads, overview=params["overview"],
                        device=params["device"])


def check_task_options(ctx: click.Context, task: str, segmentation_only: tuple[str, ...],
                       detection_only: tuple[str, ...]) -> None:
    """Segmentation options given for a detector, or detection options for a segmenter: a one-line error."""
    from click.core import ParameterSource

    from edgekit.errors import ConfigError

    names = segmentation_only if task == "detection" else detection_only
    wrong = [max(p.opts, key=len) for p in ctx.command.params
             if p.name in names and ctx.get_parameter_source(p.name) not in (ParameterSource.DEFAULT, None)]
    if wrong:
        other = "segmentation" if task == "detection" else "detection"
        raise ConfigError(f"{', '.join(wrong)} apply to {other} artifacts; this artifact's task is {task}")


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
    with stage_progress(f"{image.name}: detecting"):
        return _run_one(art, image, DetectionOutputs(output, jsonl, preview), config)


def _run_one(art: Artifact, image: Path, outputs: DetectionOutputs, config: DetectConfig, runner=None) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = write_detections(art, image, outputs, config, runner=runner)
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
    from edgekit.cli.folders import check_images, each_image

    def one(path: Path) -> str:
        outputs = DetectionOutputs(output / f"{path.stem}.json", jsonl / f"{path.stem}.jsonl" if jsonl else None,
                                   preview / f"{path.stem}.png" if preview else None)
        return _run_one(art, path, outputs, config, runner)

    with open_runner(art, config.backend, config.threads, device=config.device) as runner:
        check_images(images, art, runner, config.overlap, config.batch)  # a bad image stops here, nothing written
        with stage_progress("detecting") as say:
            return each_image(images, one, output, say)
