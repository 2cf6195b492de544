"""The demo detector on NEON tree crowns: COCO mAP on the held-out part, per artifact precision.

The held-out part is the right 30% of the deepforest image (columns the training script never
read). Each artifact runs tiled over it through edgekit's detection runner; boxes are scored
against the real crown boxes (centre in the part, clipped to it) with pycocotools. Also runs on
OSBS_029.tif (another NEON site, a GeoTIFF) and prints its mAP and a box's WGS84 corners.

    python bench/detect_trees.py out/det_fp32 out/det_fp16 out/det_int8 --overlap 64
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from edgekit.data import neon_trees
from edgekit.runtime.decode import Detections
from edgekit.scoring import coco_map
from edgekit.detect.execute import DetectConfig, detect_image


def truth(boxes: np.ndarray) -> Detections:
    return Detections(boxes.astype(np.float32), np.ones(len(boxes), np.float32), np.zeros(len(boxes), np.int32))


def run(artifact: Path, image: Path, config: DetectConfig) -> tuple[Detections, float]:
    got = []
    t0 = time.perf_counter()
    detect_image(artifact, image, got.append, config)
    seconds = time.perf_counter() - t0
    return Detections.concat(got), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("artifacts", nargs="+", type=Path)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--conf", type=float, default=0.05, help="low, as mAP wants the whole ranking")
    ap.add_argument("--work", type=Path, default=Path("runs/detect_bench"))
    args = ap.parse_args()
    from PIL import Image

    args.work.mkdir(parents=True, exist_ok=True)
    image = neon_trees.load_image()
    col = neon_trees.split_column(image.shape[1])
    held = args.work / "heldout.png"
    Image.fromarray(image[:, col:]).save(held)
    gt = truth(neon_trees.boxes_in_columns(neon_trees.load_boxes(), col, image.shape[1]))
    osbs_path = neon_trees.data_dir() / neon_trees.GEOTIFF
    osbs_gt = truth(neon_trees.load_boxes(neon_trees.GEOTIFF))
    config = DetectConfig(overlap=args.overlap, conf=args.conf, threads=2)
    print(f"held-out: columns {col}..{image.shape[1]} of {neon_trees.IMAGE} ({image.shape[1] - col}x{image.shape[0]} px, "
          f"{len(gt)} crowns); OSBS_029.tif: {len(osbs_gt)} crowns")
    print("| artifact | precision | mAP@0.5 | mAP@0.5:0.95 | boxes | seconds | OSBS mAP@0.5 | OSBS mAP@0.5:0.95 |")
    print("|---|---|---|---|---|---|---|---|")
    for art in args.artifacts:
        from edgekit.artifact.folder import load_artifact

        precision = load_artifact(art).manifest.precision
        det, seconds = run(art, held, config)
        m = coco_map([gt], [det], [(image.shape[0], image.shape[1] - col)])
        odet, _ = run(art, osbs_path, config)
        o = coco_map([osbs_gt], [odet], [(400, 400)])
        print(f"| {art} | {precision} | {m['map50']:.4f} | {m['map50_95']:.4f} | {len(det)} | {seconds:.1f} | "
              f"{o['map50']:.4f} | {o['map50_95']:.4f} |", flush=True)
    print(check_geojson(args.artifacts[0], osbs_path, args.work / "osbs.geojson"))


def check_geojson(artifact: Path, tif: Path, out: Path) -> str:
    """Run `edgekit infer` to GeoJSON on a GeoTIFF; check every corner lies in the raster's WGS84 bounds."""
    import json
    import subprocess
    import sys

    import rasterio
    from pyproj import Transformer

    subprocess.run([sys.executable, "-m", "edgekit.cli.main", "infer", str(artifact), str(tif), "-o", str(out),
                    "--conf", "0.25", "--no-progress"], check=True, capture_output=True)
    features = json.loads(out.read_text())["features"]
    with rasterio.open(tif) as ds:
        b, crs = ds.bounds, ds.crs
    lon, lat = Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True).transform(
        [b.left, b.right, b.left, b.right], [b.bottom, b.bottom, b.top, b.top])
    ring = np.concatenate([np.array(f["geometry"]["coordinates"][0]) for f in features]) if features else np.zeros((0, 2))
    inside = ((ring[:, 0] >= min(lon) - 1e-9) & (ring[:, 0] <= max(lon) + 1e-9)
              & (ring[:, 1] >= min(lat) - 1e-9) & (ring[:, 1] <= max(lat) + 1e-9)).all()
    first = features[0]["geometry"]["coordinates"][0][0] if features else None
    return (f"{tif.name} ({crs}): {len(features)} boxes in GeoJSON, all corners inside the raster's WGS84 bounds "
            f"lon {min(lon):.6f}..{max(lon):.6f}, lat {min(lat):.6f}..{max(lat):.6f}: {bool(inside)}; first corner {first}")


if __name__ == "__main__":
    main()
