"""Does tiled detection keep the model busy? `detect_image` (read, infer, decode, merge overlapped)
against the bare runner on the same tiles.

Both sides use one runner in this process (session made once, one warm-up call excluded) and the
same tiles, batch and overlap:
  bare:  runner.infer on the image's batches, read and preprocessed beforehand (nothing else);
  tiled: detect_image end to end: reading, preprocessing, inference, decoding, NMS, merging
         across tile seams, streaming boxes to a sink that keeps them.
Rounds alternate bare, tiled, bare, tiled...; the ratio is median tiled tiles/s over median bare
tiles/s. Goal (issue 23): >= 0.9. Prints the CPU and runtime.

    python bench/detect_overlap.py ARTIFACT IMAGE [--overlap 64] [--rounds 3] [--threads 0]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("image", type=Path)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    from edgekit.artifact.folder import load_artifact
    from edgekit.detect.execute import DetectConfig, detect_image
    from edgekit.images import open_image
    from edgekit.machine import cpu_name
    from edgekit.runtime.open import open_runner
    from edgekit.tiling.plan import plan_tiles

    artifact = load_artifact(args.artifact)
    config = DetectConfig(overlap=args.overlap, threads=args.threads)
    with open_runner(artifact, threads=args.threads) as runner, open_image(args.image) as source:
        plan = plan_tiles(artifact.manifest, runner, source, args.overlap)
        feeds = [plan.feed(b.tiles) for b in plan.batches(source) if not b.skipped]
        tiles = sum(1 for b in plan.batches(source) if not b.skipped for _ in b.windows)
        runner.infer(feeds[0])
        bare, tiled, boxes = [], [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for feed in feeds:
                runner.infer(feed)
            bare.append(tiles / (time.perf_counter() - start))
            kept = []
            result = detect_image(artifact, args.image, kept.append, config, runner=runner)
            tiled.append(result.tiles / result.seconds)
            boxes.append(result.boxes)
    b, t = statistics.median(bare), statistics.median(tiled)
    print(f"cpu: {cpu_name()} ({platform.machine()}), runner {runner.name}, image {args.image.name} "
          f"{source.shape[1]}x{source.shape[0]}, {tiles} tiles of {plan.layout.tile_h}x{plan.layout.tile_w}, "
          f"batch {plan.batch}, overlap {args.overlap}, {boxes[-1]} boxes")
    print(f"bare runner  tiles/s per round: {', '.join(f'{v:.2f}' for v in bare)}  median {b:.2f}")
    print(f"detect_image tiles/s per round: {', '.join(f'{v:.2f}' for v in tiled)}  median {t:.2f}")
    print(f"tiled / bare: {t / b:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
