"""optimize on the demo models, cpu target: speed ratio and mIoU drop, measured side by side.

1. FastViT-SA12 + FPN (recipe fastvit_sa12_fpn): optimize's artifact (--max-drop 0.5) vs FP32.
2. MobileOne-S0 + FPN (recipe mobileone_s0_fpn, trained with
   `python scripts/train_demo.py --recipe mobileone_s0_fpn`): plain INT8 (`edgekit build
   --precision int8`) vs optimize under a 1-point budget.
mIoU: against the real land-sea mask over the whole held-out region (east of 45E), tile by tile.
Latency: edgekit.profile on the same machine in the same run.

    python bench/optimize_demo.py [--out runs/optimize_bench] [--cache DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from edgekit.convert.pipeline import BuildConfig, build
from edgekit.data import bluemarble
from edgekit.optimize import Constraints, OptimizeConfig, optimize
from edgekit.profile import ProfileConfig, TimingConfig, profile_artifact
from edgekit.recipes import load_recipe
from edgekit.artifact.folder import load_artifact
from edgekit.runtime.open import open_runner

CALIB, VAL = Path("calib/bluemarble"), Path("calib/bluemarble_val")


def region_grid(h: int, w: int, tile: int = 512) -> list[tuple[int, int]]:
    """The (row, col) corners of full tiles covering an h x w region (edge tiles shifted in)."""
    return [(r, c) for r in sorted({*range(0, h - tile, tile), h - tile}) for c in sorted({*range(0, w - tile, tile), w - tile})]


def held_out_miou(folder: Path, image, mask, col: int, tile: int = 512) -> float:
    """mIoU of an artifact east of the split, on :func:`region_grid`'s tiles."""
    from edgekit.metrics import confusion, iou_from_confusion

    artifact = load_artifact(folder)
    pre = artifact.manifest.preprocess
    region, truth = image[:, col:], mask[:, col:]
    cm = np.zeros((3, 3), np.int64)
    with open_runner(artifact) as runner:
        name = runner.input_specs()[0].name
        for r, c in region_grid(*truth.shape, tile):
            out = next(iter(runner.infer({name: pre.apply(region[r:r + tile, c:c + tile][None])}).values()))
            cm += confusion(truth[r:r + tile, c:c + tile], out.argmax(1)[0], 3)
    return 100 * float(np.nanmean(iou_from_confusion(cm)))


def region_folder(out: Path, image, mask, col: int, tile: int = 512) -> Path:
    """The held-out region east of the split as a folder of :func:`region_grid`'s tiles with masks/
    (what ``--val`` reads): a held-out set whose figure is the region's, not a sample's."""
    from PIL import Image

    (out / "masks").mkdir(parents=True, exist_ok=True)
    for r, c in region_grid(image.shape[0], image.shape[1] - col, tile):
        name = f"region_r{r:04d}_c{col + c:04d}.png"
        Image.fromarray(image[r:r + tile, col + c:col + c + tile]).save(out / name)
        Image.fromarray(mask[r:r + tile, col + c:col + c + tile]).save(out / "masks" / name)
    return out


def latency_ms(folder: Path) -> float:
    report = profile_artifact(folder, ProfileConfig(timing=TimingConfig(warmup_s=2, duration_s=10), power=False))
    return report.batches[0].end_to_end.p50


def row(name: str, folder: Path, data) -> dict:
    return {"name": name, "latency_ms": latency_ms(folder), "miou": held_out_miou(folder, *data)}


def show(title: str, base: dict, other: dict) -> None:
    print(f"\n{title}")
    for r in (base, other):
        print(f"  {r['name']:<28} {r['latency_ms']:8.1f} ms   mIoU {r['miou']:.2f}")
    print(f"  speed ratio {base['latency_ms'] / other['latency_ms']:.2f}x, mIoU drop {base['miou'] - other['miou']:.2f} points")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/optimize_bench"))
    ap.add_argument("--cache", type=Path, default=None, help="measurement cache (default: ~/.cache/edgekit/optimize)")
    args = ap.parse_args()
    image = bluemarble.load_image()
    data = (image, bluemarble.load_mask(image.shape[:2]), bluemarble.split_column(image.shape[1]))
    config = OptimizeConfig(target="cpu", calib=CALIB, val=VAL, **({"cache": args.cache} if args.cache else {}))

    start = time.perf_counter()
    fp32 = build("fastvit_sa12_fpn", args.out / "fastvit_fp32", BuildConfig(latency_runs=0)).folder
    best = optimize("fastvit_sa12_fpn", args.out / "fastvit_opt", Constraints(max_drop=0.5), config, progress=print)
    print(f"optimize: {best.report.seconds / 60:.1f} min; chosen {best.report.chosen.name}")
    show("FastViT-SA12 + FPN, cpu: FP32 vs optimize (max drop 0.5)", row("fp32", fp32, data), row(f"optimize ({best.report.chosen.name})", best.folder, data))

    recipe = load_recipe("mobileone_s0_fpn")
    if recipe.checkpoint is None or not recipe.checkpoint.is_file():
        print("\nMobileOne-S0 + FPN: no trained weights; train: python scripts/train_demo.py --recipe mobileone_s0_fpn")
        return
    plain = build("mobileone_s0_fpn", args.out / "mobileone_int8",
                  BuildConfig(precision="int8", calib=CALIB, val=VAL, calib_samples=16, latency_runs=0)).folder
    m1 = optimize("mobileone_s0_fpn", args.out / "mobileone_opt", Constraints(max_drop=1.0), config, progress=print)
    m32 = build("mobileone_s0_fpn", args.out / "mobileone_fp32", BuildConfig(latency_runs=0)).folder
    base = row("fp32", m32, data)
    show("MobileOne-S0 + FPN, cpu: FP32 vs plain INT8", base, row("plain int8", plain, data))
    show("MobileOne-S0 + FPN, cpu: FP32 vs optimize (max drop 1.0)", base, row(f"optimize ({m1.report.chosen.name})", m1.folder, data))
    print(f"\nbench time {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
