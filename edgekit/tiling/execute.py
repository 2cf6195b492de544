"""Tiled inference of an artifact over one image: read -> infer -> stitch -> write, overlapped.

Three stages overlapped (:mod:`edgekit.tiling.stages`, as detection runs): a reader reads, pads
and preprocesses the next batch (the tile plan detection shares, :mod:`edgekit.tiling.plan`) while
the caller's thread runs the model on the current one, and a stitcher blends finished tiles and
writes finished rows. The queues between them hold two batches at most, so memory stays bounded
by tile size, batch and image width. Outputs go to
temporary files, renamed only when every one of them is complete.
"""
from __future__ import annotations

__all__ = ["TileConfig", "TileOutputs", "InferResult", "infer_image", "predict_mask", "plan_for", "check_outputs"]

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.atomic import atomic_file
from edgekit.errors import ConfigError, InputError
from edgekit.images import ImageSource, open_image
from edgekit.artifact.manifest import Manifest
from edgekit.artifact.folder import Artifact, load_artifact
from edgekit.memory import peak_rss_mb
from edgekit.runtime.base import Runner
from edgekit.runtime.open import check_device, open_runner
from edgekit.images.geometry import BLENDS
from edgekit.tiling.merge import NODATA_CLASS, FinishedRows, Stitcher, probabilities_from_output
from edgekit.tiling.plan import TileBatch, TilePlan, check_task, plan_tiles
from edgekit.tiling.preview import Preview
from edgekit.tiling.stages import run_stages
from edgekit.tiling.writers import WRITE_SUFFIXES, open_writer


@dataclass(frozen=True)
class TileConfig:
    """How to tile.

    Attributes:
        overlap: pixels shared by neighbouring tiles.
        blend: ``gaussian``, ``linear`` or ``crop`` (see :mod:`edgekit.images.geometry`).
        batch: tiles per inference; None takes the artifact's (1 when its batch is dynamic).
        backend: runner backend; None takes the artifact's.
        threads: runner threads (0: the backend's default).
        progress: show a progress bar on stderr.
        queue_depth: batches waiting between pipeline stages.
        device: the GPU a GPU backend runs on (0: the first); a CPU backend takes 0 only.
    """

    overlap: int = 64
    blend: str = "gaussian"
    batch: int | None = None
    backend: str | None = None
    threads: int = 0
    progress: bool = False
    queue_depth: int = 2
    device: int = 0

    def __post_init__(self) -> None:
        check_device(self.device, self.backend)
        if self.blend not in BLENDS:
            raise ConfigError(f"unknown blend {self.blend!r}; choose one of {', '.join(BLENDS)}")
        if self.overlap < 0:
            raise ConfigError(f"overlap must be >= 0 pixels, got {self.overlap}")
        if self.batch is not None and self.batch < 1:
            raise ConfigError(f"batch must be >= 1, got {self.batch}")


@dataclass(frozen=True)
class TileOutputs:
    """Where results go: class mask (.tif/.png), optional float16 probabilities (.tif), optional preview (.png)."""

    mask: Path
    probabilities: Path | None = None
    preview: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (self.mask, self.probabilities, self.preview) if p is not None]


@dataclass(frozen=True)
class InferResult:
    """What one run did and how fast: sizes, tiles, seconds, throughput, peak memory (the process's
    peak RSS, and the stitcher's own peak: float blocks and finished rows)."""

    image: Path
    outputs: TileOutputs
    shape: tuple[int, int, int]
    tile: tuple[int, int]
    batch: int
    tiles: int
    skipped_tiles: int
    seconds: float
    backend: str
    peak_rss_mb: float
    stitch_mb: float

    @property
    def tiles_per_s(self) -> float:
        return self.tiles / self.seconds if self.seconds else 0.0

    @property
    def mpx_per_s(self) -> float:
        return self.shape[0] * self.shape[1] / 1e6 / self.seconds if self.seconds else 0.0


def plan_for(manifest: Manifest, runner: Runner, source: ImageSource, config: TileConfig) -> TilePlan:
    """Check the image against a segmentation artifact and plan its tiles (:func:`edgekit.tiling.plan.plan_tiles`)."""
    check_task(manifest, "segmentation", "stitching class masks")
    return plan_tiles(manifest, runner, source, config.overlap, config.batch, config.blend)


def _writers(stack: ExitStack, outputs: TileOutputs, source: ImageSource, classes: int) -> dict:
    """Open a row writer per output, each on a temporary file renamed when the stack closes cleanly."""
    height, width, _ = source.shape
    temps = {key: stack.enter_context(atomic_file(path)) for key, path in
             (("mask", outputs.mask), ("probabilities", outputs.probabilities)) if path is not None}
    writers = {"mask": stack.enter_context(open_writer(
        temps["mask"], outputs.mask.suffix, height, width, 1, np.uint8, source.georef, NODATA_CLASS))}
    if "probabilities" in temps:
        writers["probabilities"] = stack.enter_context(open_writer(
            temps["probabilities"], outputs.probabilities.suffix, height, width, classes, np.float16, source.georef))
    return writers


def check_outputs(outputs: TileOutputs) -> None:
    """Fail before any work when an output's format is wrong or its folder is missing or not writable."""
    formats = ((outputs.mask, WRITE_SUFFIXES, "the class mask"), (outputs.probabilities, (".tif", ".tiff"),
               "float16 probabilities"), (outputs.preview, (".png",), "the preview"))
    for path, suffixes, what in formats:
        if path is not None and path.suffix.lower() not in suffixes:
            raise InputError(f"{what} is written as {' or '.join(suffixes)}, not {path.name}")
    for path in outputs.paths():
        folder = path.parent
        if not folder.is_dir():
            raise InputError(f"output folder {folder} does not exist; create it first")
        if not os.access(folder, os.W_OK):
            raise InputError(f"output folder {folder} is not writable")
        if path.is_dir():
            raise InputError(f"output {path} is a folder; give a file name")


def infer_image(artifact: Artifact | Path | str, image: Path | str, outputs: TileOutputs | Path | str,
                config: TileConfig = TileConfig(), runner: Runner | None = None) -> InferResult:
    """Run ``artifact`` over ``image`` tile by tile and write the stitched outputs.

    Args:
        artifact: an :class:`Artifact` or its folder.
        image: TIFF/BigTIFF/GeoTIFF, PNG/JPEG or ``.npy``.
        outputs: a :class:`TileOutputs`, or just the class mask's path.
        config: tiling settings.
        runner: an active runner to reuse (a folder of images); None opens one for this image.

    Raises:
        InputError, ConfigError, ArtifactError: one-line user errors; no output is left behind.
    """
    artifact = artifact if isinstance(artifact, Artifact) else load_artifact(Path(artifact))
    outputs = outputs if isinstance(outputs, TileOutputs) else TileOutputs(Path(outputs))
    check_outputs(outputs)
    with ExitStack() as stack:
        source = stack.enter_context(open_image(Path(image), cache_rows=int(artifact.manifest.tile[0])))
        if runner is None:
            runner = stack.enter_context(open_runner(artifact, config.backend, config.threads, device=config.device))
        plan = plan_for(artifact.manifest, runner, source, config)
        return _run(plan, runner, source, outputs, config, _softmaxed(artifact.manifest), stack, artifact.manifest.classes)


class _MaskInMemory:
    """The class mask kept as an array: the row writer `predict_mask` stitches into."""

    def __init__(self, height: int, width: int):
        self.mask = np.full((height, width), NODATA_CLASS, np.uint8)
        self.row = 0

    def write(self, rows: np.ndarray) -> None:
        self.mask[self.row:self.row + rows.shape[0]] = rows
        self.row += rows.shape[0]


def predict_mask(artifact: Artifact, image: Path | str, config: TileConfig = TileConfig(),
                 runner: Runner | None = None) -> np.ndarray:
    """The class mask (H, W) uint8 `infer_image` would write for ``image``, kept in memory.

    Same reading, pixel mapping, tiles, batches, blending and stitching as :func:`infer_image`:
    what `edgekit compare` scores is what `edgekit infer` delivers. Nodata pixels are 255.
    """
    with ExitStack() as stack:
        source = stack.enter_context(open_image(Path(image), cache_rows=int(artifact.manifest.tile[0])))
        if runner is None:
            runner = stack.enter_context(open_runner(artifact, config.backend, config.threads, device=config.device))
        plan = plan_for(artifact.manifest, runner, source, config)
        memory = _MaskInMemory(source.shape[0], source.shape[1])
        _stitch(plan, runner, source, {"mask": memory}, None, config, _softmaxed(artifact.manifest))
        return memory.mask


def _softmaxed(manifest: Manifest) -> bool:
    """True when the model's output is probabilities already (no softmax)."""
    return bool(manifest.output.get("probabilities", False))


def _stitch(plan: TilePlan, runner: Runner, source: ImageSource, writers: dict, preview: Preview | None,
            config: TileConfig, softmaxed: bool) -> tuple[dict, Stitcher]:
    """Run the three-stage pipeline, handing finished rows to ``writers`` (and ``preview``)."""
    classes = int(runner.output_specs()[0].shape[1])

    def emit(rows: FinishedRows) -> None:
        writers["mask"].write(rows.mask)
        if "probabilities" in writers:
            writers["probabilities"].write(rows.probabilities)
        if preview is not None:
            preview.add_mask(rows.top, rows.mask)

    layout = plan.layout
    stitcher = Stitcher(layout.height, layout.width, classes, layout.rows, layout.window_shape[0], layout.weigher(),
                        emit, probabilities="probabilities" in writers)
    counts = {"tiles": 0, "skipped": 0}
    with _Progress(config.progress, len(layout), source.path.name, layout.height * layout.width) as bar:
        _pipeline(plan, runner, source, stitcher, preview, config, softmaxed, counts, bar)
    return counts, stitcher


def _run(plan: TilePlan, runner: Runner, source: ImageSource, outputs: TileOutputs, config: TileConfig,
         softmaxed: bool, stack: ExitStack, names: tuple[str, ...] = ()) -> InferResult:
    classes = int(runner.output_specs()[0].shape[1])
    preview = Preview.for_source(source, plan.pixels.preprocess.scale, classes=names) if outputs.preview is not None else None
    preview_tmp = stack.enter_context(atomic_file(outputs.preview)) if preview is not None else None
    writers = _writers(stack, outputs, source, classes)
    start = time.perf_counter()
    counts, stitcher = _stitch(plan, runner, source, writers, preview, config, softmaxed)
    layout = plan.layout
    if preview is not None:
        preview.save(preview_tmp)
    stack.close()  # writers finish, then temporary files become the outputs
    seconds = time.perf_counter() - start
    return InferResult(
        image=source.path, outputs=outputs, shape=source.shape, tile=(layout.tile_h, layout.tile_w),
        batch=plan.batch, tiles=counts["tiles"], skipped_tiles=counts["skipped"], seconds=seconds,
        backend=runner.name, peak_rss_mb=peak_rss_mb() or 0.0, stitch_mb=stitcher.peak_bytes / 2**20,
    )


def _pipeline(plan: TilePlan, runner: Runner, source: ImageSource, stitcher: Stitcher, preview: Preview | None,
              config: TileConfig, softmaxed: bool, counts: dict, bar: "_Progress") -> None:
    output_name = runner.output_specs()[0].name
    tile = (plan.layout.tile_h, plan.layout.tile_w)

    def infer(tiles: TileBatch):
        if tiles.skipped:
            return tiles, None
        out = runner.infer(plan.feed(tiles.tiles))[output_name]
        return tiles, probabilities_from_output(out[: len(tiles.windows)], tile, softmaxed)

    def stitch(item) -> None:
        tiles, probs = item
        for i, (win, valid) in enumerate(zip(tiles.windows, tiles.valid)):
            if probs is None:
                stitcher.skip(win)
            else:
                stitcher.add(win, probs[i, :, :win.height, :win.width], valid)
        counts["skipped" if probs is None else "tiles"] += len(tiles.windows)
        bar.advance(len(tiles.windows))

    run_stages(plan.batches(source, preview), infer, [stitch], config.queue_depth, ["tile-stitcher"])
    stitcher.close()


class _Progress:
    """A rich progress bar with tiles/s and Mpx/s, or nothing when off."""

    def __init__(self, enabled: bool, total: int, label: str, image_px: int):
        self.enabled, self.total, self.label, self.image_px = enabled, total, label, image_px
        self._progress = self._task = None
        self._start = time.perf_counter()
        self._done = 0

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} tiles"),
                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total, rate="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def advance(self, n: int) -> None:
        self._done += n
        if self._progress is None:
            return
        dt = max(time.perf_counter() - self._start, 1e-9)
        mpx = self.image_px * self._done / self.total / 1e6  # image pixels, overlap not counted twice
        rate = f"{self._done / dt:.1f} tiles/s {mpx / dt:.2f} Mpx/s"
        self._progress.update(self._task, advance=n, rate=rate)
