"""One tile plan for every tiled task: where the tiles go, how a window becomes model input, batches.

Segmentation (:mod:`edgekit.tiling.execute`) and detection (:mod:`edgekit.detect.execute`) both
tile through a :class:`TilePlan`, so they read, preview, skip and batch tiles the same way:

* the artifact is checked against the image first (overlap within the tile, the engine's batch,
  channels, pixel type and bands: :func:`plan_tiles`);
* each window is read once from the image and turned into model input by the one pixel map
  (:class:`edgekit.images.PixelMap`: bands, nodata, reflect padding of windows smaller than the
  tile, normalisation); a preview gets the same window in the model's bands and the file's units;
* a window that holds no data at all is not run: it comes as a batch of its own with no tiles;
* tiles are grouped into batches of the engine's size, row-major (:meth:`TilePlan.batches`) or
  one row of tiles at a time (:meth:`TilePlan.bands`); a short batch is zero-padded to the
  engine's batch and cast to its input type by :meth:`TilePlan.feed`.
"""
from __future__ import annotations

__all__ = ["TileBatch", "TilePlan", "plan_tiles", "check_task"]

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from edgekit.artifact.manifest import Manifest
from edgekit.errors import ArtifactError, ConfigError
from edgekit.images import ImageSource, PixelMap
from edgekit.runtime.base import Runner
from edgekit.images.geometry import TileLayout, Window

def check_task(manifest: Manifest, task: str, what: str) -> None:
    """Stop in one line when ``what``, which takes ``task`` artifacts, is given another task's artifact."""
    if manifest.task != task:
        raise ConfigError(f"{what} takes {task} artifacts; this artifact's task is {manifest.task}: give a {task} "
                          "artifact (`edgekit infer` and `edgekit run` take either)")


@dataclass(frozen=True)
class TileBatch:
    """The tiles of one inference, or one window skipped because it holds no data.

    Attributes:
        windows: the windows, row-major.
        tiles: (n, C, tile_h, tile_w) model input of the windows, not padded to the engine's batch;
            None for a skipped window.
        valid: per window, (h, w) True where a pixel holds data, or None when all do.
    """

    windows: list[Window]
    tiles: np.ndarray | None
    valid: list[np.ndarray | None]

    @property
    def skipped(self) -> bool:
        return self.tiles is None


@dataclass(frozen=True)
class TilePlan:
    """How one image is tiled for one artifact (from :func:`plan_tiles`).

    Attributes:
        layout: where the windows go (:class:`edgekit.images.geometry.TileLayout`).
        batch: tiles per inference (the engine's fixed batch, or the one asked for).
        pixels: the image's pixel map (bands, nodata, padding, normalisation).
        input_name / input_dtype: the model input's name and element type.
    """

    layout: TileLayout
    batch: int
    pixels: PixelMap
    input_name: str
    input_dtype: str

    def read(self, source: ImageSource, window: Window, preview=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Model input (C, tile_h, tile_w) of one window and its valid mask; ``preview`` gets the
        window's pixels in the model's bands."""
        raw = source.read(window.row, window.col, window.height, window.width)
        if preview is not None:
            preview.add_pixels(window, self.pixels.channels(raw))
        return self.pixels.model_input(raw, window)

    def batches(self, source: ImageSource, preview=None) -> Iterator[TileBatch]:
        """Every window of the image, row-major, in batches that may span rows of tiles."""
        return self._group(self.layout.windows(), source, preview)

    def bands(self, source: ImageSource, preview=None) -> Iterator[tuple[int, Iterator[TileBatch]]]:
        """(top row, its batches) per row of tiles: no batch spans two rows. Each row's batches are
        read lazily: take them all before asking for the next row."""
        h, w = self.layout.window_shape
        cols = self.layout.cols
        for row in self.layout.rows:
            yield row, self._group((Window(row, col, h, w) for col in cols), source, preview)

    def _group(self, windows: Iterable[Window], source: ImageSource, preview) -> Iterator[TileBatch]:
        group, tiles, valids = [], [], []
        for win in windows:
            x, valid = self.read(source, win, preview)
            if valid is not None and not valid.any():
                if group:  # keep row-major order: what was gathered goes first
                    yield TileBatch(group, np.stack(tiles), valids)
                    group, tiles, valids = [], [], []
                yield TileBatch([win], None, [None])
                continue
            group.append(win)
            tiles.append(x)
            valids.append(valid)
            if len(group) == self.batch:
                yield TileBatch(group, np.stack(tiles), valids)
                group, tiles, valids = [], [], []
        if group:
            yield TileBatch(group, np.stack(tiles), valids)

    def feed(self, tiles: np.ndarray) -> dict[str, np.ndarray]:
        """The runner's feed for ``tiles`` (at most ``batch``): zero-padded to the batch, in the input's type."""
        if tiles.shape[0] < self.batch:
            pad = np.zeros((self.batch - tiles.shape[0], *tiles.shape[1:]), tiles.dtype)
            tiles = np.concatenate([tiles, pad])
        return {self.input_name: tiles.astype(self.input_dtype, copy=False)}


def plan_tiles(manifest: Manifest, runner: Runner, source: ImageSource, overlap: int, batch: int | None = None,
               blend: str = "crop") -> TilePlan:
    """Check an open image against the artifact and its runner, and plan its tiles.

    Args:
        overlap: pixels shared by neighbouring tiles (smaller than the tile).
        batch: tiles per inference; None takes the engine's (1 when its batch is dynamic).
        blend: the layout's blending weights (segmentation; detection does not weigh tiles).

    Raises:
        ConfigError: the overlap or the batch does not fit the artifact.
        ArtifactError: the manifest's channels differ from the model's.
        InputError: the image's pixel type or bands do not fit the declared units.
    """
    tile_h, tile_w = (int(v) for v in manifest.tile)
    if overlap >= min(tile_h, tile_w):
        raise ConfigError(f"--overlap {overlap} must be smaller than the {tile_h}x{tile_w} tile")
    spec = runner.input_specs()[0]
    fixed = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] > 0 else None
    batch = batch or fixed or 1
    if fixed and batch != fixed:
        raise ConfigError(f"this artifact was built for batches of {fixed}; drop --batch, or rebuild it with "
                          f"`edgekit build ... --batch {batch}` (or --batch dynamic)")
    if manifest.preprocess.channels != int(spec.shape[1]):
        raise ArtifactError(f"the manifest's preprocessing has {manifest.preprocess.channels} channels, the model "
                            f"takes {spec.shape[1]}; rebuild the artifact")
    pixels = PixelMap.for_source(source, manifest.preprocess, (tile_h, tile_w))
    height, width, _ = source.shape
    layout = TileLayout(height, width, tile_h, tile_w, overlap, blend)
    return TilePlan(layout, batch, pixels, spec.name, spec.dtype)
