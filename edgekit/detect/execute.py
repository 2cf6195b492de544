"""Tiled detection over one image, band by band: read -> infer -> decode -> merge -> emit.

The four stages overlap as segmentation's do (:mod:`edgekit.tiling.stages`): a reader thread
reads the next batch, the caller's thread runs the model, a decoder thread turns outputs into
boxes and a merger thread merges them, with bounded queues between them.

Tiles come from the tile plan segmentation uses too (:mod:`edgekit.tiling.plan`: the model's
input size, edge tiles shifted inside, no letterbox; the same pixel map, preview and batches).
A band is one row of tiles; after each band every group of boxes that
ends above the next band's first row is final (see :mod:`edgekit.detect.merge`) and goes to the
sink at once, so memory holds one band of pixels plus the boxes still open.

With ``overview`` on, a first pass reads the image once more, shrunk (every ``step``-th pixel, so
nodata stays nodata and memory stays one row) to fit one tile, and runs the model on it: SAHI's
"standard prediction", for objects larger than a tile. Its boxes, scaled back, join the merge
before the first band, and only those larger than the overlap are kept: smaller objects are seen
whole, at full resolution, by the tiles.
"""
from __future__ import annotations

__all__ = ["DetectConfig", "DetectResult", "detect_image", "write_detections", "check_detector"]

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.runtime.decode import FORMATS, Detections, decode, detect_format
from edgekit.detect.merge import BoxMerger, MergeConfig
from edgekit.detect.outputs import DetectionOutputs, DetectionWriter, check_detection_outputs
from edgekit.errors import ConfigError
from edgekit.artifact.manifest import Manifest
from edgekit.artifact.folder import Artifact, load_artifact
from edgekit.memory import peak_rss_mb
from edgekit.runtime.base import Runner
from edgekit.runtime.open import check_device, open_runner
from edgekit.images.geometry import Window
from edgekit.images import ImageSource, open_image
from edgekit.tiling.plan import TileBatch, TilePlan, check_task, plan_tiles
from edgekit.tiling.preview import Preview
from edgekit.tiling.stages import run_stages


@dataclass(frozen=True)
class DetectConfig:
    """How to detect.

    Attributes:
        overlap: pixels shared by neighbouring tiles (make it at least the largest object).
        conf: minimum score of a box.
        tile_iou: IoU threshold of the per-tile NMS of raw heads (YOLOv8/YOLOv5 formats).
        merge: how boxes from overlapping tiles are merged.
        det_format: output layout (one of :data:`edgekit.runtime.decode.FORMATS`); None: the one the build
            recorded (manifest ``output.det_format``), else read from the output shapes.
        batch / backend / threads: as for segmentation.
        overview: also detect on the whole image shrunk to one tile, for objects larger than a tile.
        device: the GPU a GPU backend runs on (0: the first); a CPU backend takes 0 only.
    """

    overlap: int = 64
    conf: float = 0.25
    tile_iou: float = 0.5
    merge: MergeConfig = field(default_factory=MergeConfig)
    det_format: str | None = None
    batch: int | None = None
    backend: str | None = None
    threads: int = 0
    overview: bool = False
    device: int = 0

    def __post_init__(self) -> None:
        check_device(self.device, self.backend)
        if self.overlap < 0:
            raise ConfigError(f"overlap must be >= 0 pixels, got {self.overlap}")
        if not 0.0 <= self.conf <= 1.0:
            raise ConfigError(f"--conf must be in [0, 1], got {self.conf}")
        if self.det_format is not None and self.det_format not in FORMATS:
            raise ConfigError(f"unknown --det-format {self.det_format!r}; choose one of {', '.join(FORMATS)}")
        if self.batch is not None and self.batch < 1:
            raise ConfigError(f"batch must be >= 1, got {self.batch}")


@dataclass(frozen=True)
class DetectResult:
    """What one run did: sizes, tiles, boxes, seconds, peak memory, and the largest box seen."""

    image: Path
    shape: tuple[int, int, int]
    tile: tuple[int, int]
    det_format: str
    tiles: int
    skipped_tiles: int
    boxes: int
    seconds: float
    backend: str
    peak_rss_mb: float
    peak_open_boxes: int
    largest_box: float
    overview_boxes: int = 0


def check_detector(manifest: Manifest) -> None:
    """Fail unless the artifact is a detector."""
    check_task(manifest, "detection", "tiled detection (--conf, --det-format, --merge...)")


def _on_data(det: Detections, valid: np.ndarray | None, win: Window) -> Detections:
    """Clip boxes to the window (an image smaller than a tile is padded) and drop those centred on nodata."""
    if not len(det):
        return det
    if win.height < det.boxes[:, 3].max() or win.width < det.boxes[:, 2].max():
        boxes = np.minimum(det.boxes, np.array([win.width, win.height] * 2, np.float32))
        det = Detections(boxes, det.scores, det.classes)
        det = det.take((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    if valid is None or not len(det):
        return det
    cx = np.clip(((det.boxes[:, 0] + det.boxes[:, 2]) / 2).astype(int), 0, valid.shape[1] - 1)
    cy = np.clip(((det.boxes[:, 1] + det.boxes[:, 3]) / 2).astype(int), 0, valid.shape[0] - 1)
    return det.take(valid[cy, cx])


def detect_image(artifact: Artifact | Path | str, image: Path | str, sink: Callable[[Detections], None],
                 config: DetectConfig = DetectConfig(), runner: Runner | None = None,
                 preview: Preview | None = None) -> DetectResult:
    """Detect objects in ``image`` tile by tile; final merged boxes go to ``sink`` as they stream.

    Args:
        artifact: an :class:`Artifact` (task ``detection``) or its folder.
        image: TIFF/BigTIFF/GeoTIFF, PNG/JPEG or ``.npy``.
        sink: called with each batch of final boxes, in image pixels.
        config: tiling, decoding and merging settings.
        runner: an active runner to reuse; None opens one for this image.
        preview: a :class:`Preview` to fill with the image's pixels, or None.
    """
    artifact = artifact if isinstance(artifact, Artifact) else load_artifact(Path(artifact))
    check_detector(artifact.manifest)
    tile = tuple(int(v) for v in artifact.manifest.tile)
    with open_image(Path(image), cache_rows=tile[0]) as source:
        if runner is None:
            with open_runner(artifact, config.backend, config.threads, device=config.device) as own:
                return _run(artifact.manifest, own, source, sink, config, preview)
        return _run(artifact.manifest, runner, source, sink, config, preview)


def write_detections(artifact: Artifact | Path | str, image: Path | str, outputs: DetectionOutputs,
                     config: DetectConfig = DetectConfig(), runner: Runner | None = None) -> DetectResult:
    """Detect objects in ``image`` and write ``outputs`` (COCO, GeoJSON, GeoPackage, JSON Lines, preview).

    What `edgekit infer` and `edgekit run` write for a detector: the outputs appear whole when the
    image is done, or not at all (:class:`edgekit.detect.outputs.DetectionWriter`).

    Raises:
        InputError, ConfigError, ArtifactError: one-line user errors (a georeferenced format of a
            plain image among them), checked before any tile runs; nothing is left behind.
    """
    artifact = artifact if isinstance(artifact, Artifact) else load_artifact(Path(artifact))
    check_detector(artifact.manifest)
    with open_image(Path(image)) as source:
        georef = source.georef if source.georef and source.georef.get("crs") else None
        shape = source.shape
        view = Preview.for_source(source, artifact.manifest.preprocess.scale, classes=artifact.manifest.classes) \
            if outputs.preview is not None else None
    check_detection_outputs(outputs, georef is not None)
    with DetectionWriter(outputs, Path(image), shape, artifact.manifest.classes, georef, view) as writer:
        return detect_image(artifact, image, writer, config, runner=runner, preview=view)


def _run(manifest: Manifest, runner: Runner, source: ImageSource, sink: Callable[[Detections], None],
         config: DetectConfig, preview: Preview | None) -> DetectResult:
    plan = plan_tiles(manifest, runner, source, config.overlap, config.batch)
    fmt = config.det_format or manifest.output.get("det_format") or detect_format(runner.output_specs(),
                                                                                tuple(manifest.tile))
    counts = {"tiles": 0, "skipped": 0, "boxes": 0}

    def emit(det: Detections) -> None:
        counts["boxes"] += len(det)
        sink(det)

    merger = BoxMerger(config.merge, emit, config.overlap)
    start = time.perf_counter()
    overview = _overview(plan, fmt, runner, source, config) if config.overview else Detections.empty()
    merger.add(overview, from_tiles=False)
    rows = plan.layout.rows
    tile = (plan.layout.tile_h, plan.layout.tile_w)
    specs = runner.output_specs()

    def produce():
        """Each row's batches, then the row below it (None after the last): where boxes become final."""
        for i, (_, band) in enumerate(plan.bands(source, preview)):
            yield from band
            yield rows[i + 1] if i + 1 < len(rows) else None

    def infer(item):
        if not isinstance(item, TileBatch) or item.skipped:
            return item, None
        return item, runner.infer(plan.feed(item.tiles))

    def decoded(item):
        tiles, out = item
        if out is None:
            return tiles, None
        per_tile = decode(out, specs, fmt, config.conf, tile, config.tile_iou)[:len(tiles.windows)]
        return tiles, [_on_data(det, valid, win).shifted(win.col, win.row)
                       for win, valid, det in zip(tiles.windows, tiles.valid, per_tile)]

    def merge(item) -> None:
        tiles, boxes = item
        if not isinstance(tiles, TileBatch):
            merger.flush(tiles)  # a row is done: boxes above the next row's top are final
        elif boxes is None:
            counts["skipped"] += 1
        else:
            for det in boxes:
                merger.add(det)
            counts["tiles"] += len(tiles.windows)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_stages(produce(), infer, [decoded, merge], names=["box-decoder", "box-merger"])
    for warning in caught:
        warnings.warn(warning.message, stacklevel=2)
    return DetectResult(
        image=source.path, shape=source.shape, tile=(plan.layout.tile_h, plan.layout.tile_w), det_format=fmt,
        tiles=counts["tiles"], skipped_tiles=counts["skipped"], boxes=counts["boxes"],
        seconds=time.perf_counter() - start, backend=runner.name,
        peak_rss_mb=peak_rss_mb() or 0.0,
        peak_open_boxes=merger.peak_open, largest_box=merger.largest, overview_boxes=len(overview),
    )


def _overview(plan: TilePlan, fmt: str, runner: Runner, source: ImageSource, config: DetectConfig) -> Detections:
    """Boxes of the whole image shrunk to fit one tile, in image pixels, larger than the overlap."""
    height, width, _ = source.shape
    tile_h, tile_w = plan.layout.tile_h, plan.layout.tile_w
    step = math.ceil(max(height / tile_h, width / tile_w))
    if step <= 1:
        return Detections.empty()  # the image fits one tile: the tiles see it whole already
    small = np.stack([source.read(row, 0, 1, width)[0, ::step] for row in range(0, height, step)])
    x, valid = plan.pixels.model_input(small)
    out = runner.infer(plan.feed(x[None]))
    det = decode(out, runner.output_specs(), fmt, config.conf, (tile_h, tile_w), config.tile_iou)[0]
    det = _on_data(det, valid, Window(0, 0, small.shape[0], small.shape[1]))
    det = Detections(det.boxes * np.float32(step), det.scores, det.classes)
    det = Detections(np.minimum(det.boxes, np.array([width, height] * 2, np.float32)), det.scores, det.classes)
    side = np.maximum(det.boxes[:, 2] - det.boxes[:, 0], det.boxes[:, 3] - det.boxes[:, 1])
    return det.take(side > config.overlap)
