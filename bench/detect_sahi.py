"""edgekit's tiled detection against SAHI's sliced prediction, same ONNX, tile size and overlap.

SAHI (pip install sahi) slices the image it has decoded whole, runs a model per slice, and merges
with NMS by IoS 0.5 (``postprocess_type="NMS"``, edgekit's default: greedy growth, SAHI's default
and edgekit's ``--merge greedy``, grew neighbouring crowns of the demo detector into double-size
boxes); edgekit streams bands and merges the same way. Both
use the artifact's ONNX through ONNX Runtime, the same normalisation and the same YOLOv8 decoding
(edgekit's decoder with per-tile NMS, wrapped as a SAHI DetectionModel), so the difference is the
slicing, the merging and the memory. Each run is its own process (peak RSS); the runs alternate
(edgekit, SAHI, edgekit, SAHI...). mAP is on the held-out part of the NEON image (right 30%).

    python bench/detect_sahi.py out/det --rounds 2 --overlap 64
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def run_edgekit(artifact: Path, image: Path, overlap: int, conf: float) -> list:
    from edgekit.detect.execute import DetectConfig, detect_image

    got = []
    detect_image(artifact, image, got.append, DetectConfig(overlap=overlap, conf=conf, threads=2))
    return [[*map(float, b), float(s), int(c)] for d in got for b, s, c in zip(d.boxes, d.scores, d.classes)]


def run_sahi(artifact: Path, image: Path, overlap: int, conf: float) -> list:
    from sahi.models.base import DetectionModel
    from sahi.predict import get_sliced_prediction
    from sahi.prediction import ObjectPrediction

    from edgekit.runtime.decode import decode, detect_format
    from edgekit.artifact.folder import load_artifact
    from edgekit.runtime.open import open_runner

    art = load_artifact(artifact)
    manifest = art.manifest

    class EdgekitOnnx(DetectionModel):
        def load_model(self):
            self.model = open_runner(art, threads=2).__enter__()
            self.specs = self.model.output_specs()
            self.fmt = detect_format(self.specs)

        def perform_inference(self, image):
            h, w = image.shape[:2]
            th, tw = manifest.tile
            pad = np.zeros((th, tw, 3), np.float32)
            pad[:h, :w] = image
            x = manifest.preprocess.apply(pad)
            out = self.model.infer({self.model.input_specs()[0].name: x})
            self._original_predictions = decode(out, self.specs, self.fmt, self.confidence_threshold, (th, tw))[0]

        @property
        def num_categories(self):
            return len(manifest.classes)

        @property
        def has_mask(self):
            return False

        @property
        def category_names(self):
            return list(manifest.classes)

        def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=[[0, 0]],
                                                                     full_shape_list=None):
            det = self._original_predictions
            shift = shift_amount_list[0] if isinstance(shift_amount_list[0], list) else shift_amount_list
            full = full_shape_list[0] if full_shape_list and isinstance(full_shape_list[0], list) else full_shape_list
            preds = [ObjectPrediction(bbox=[float(v) for v in b], category_id=int(c),
                                      category_name=manifest.classes[int(c)], score=float(s),
                                      shift_amount=shift, full_shape=full)
                     for b, s, c in zip(det.boxes, det.scores, det.classes) if b[2] > b[0] and b[3] > b[1]]
            self._object_prediction_list_per_image = [preds]

    model = EdgekitOnnx(confidence_threshold=conf, category_mapping={"0": manifest.classes[0]}, device="cpu")
    th, tw = manifest.tile
    result = get_sliced_prediction(str(image), model, slice_height=th, slice_width=tw,
                                   overlap_height_ratio=overlap / th, overlap_width_ratio=overlap / tw,
                                   perform_standard_pred=False, postprocess_type="NMS",
                                   postprocess_match_metric="IOS", postprocess_match_threshold=0.5, verbose=0)
    return [[*p.bbox.to_xyxy(), p.score.value, p.category.id] for p in result.object_prediction_list]


def child(args) -> None:
    fn = run_edgekit if args.child == "edgekit" else run_sahi
    t0 = time.perf_counter()
    boxes = fn(args.artifact, args.image, args.overlap, args.conf)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": seconds, "peak_rss_mb": rss, "boxes": boxes}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--image", type=Path, default=None, help="default: the held-out part of the NEON image")
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--conf", type=float, default=0.05)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("runs/detect_sahi"))
    ap.add_argument("--child", choices=("edgekit", "sahi"), default=None)
    args = ap.parse_args()
    if args.child:
        return child(args)
    from PIL import Image

    from edgekit.data import neon_trees
    from edgekit.runtime.decode import Detections
    from edgekit.scoring import coco_map

    args.work.mkdir(parents=True, exist_ok=True)
    image = neon_trees.load_image()
    col = neon_trees.split_column(image.shape[1])
    held = args.work / "heldout.png"
    Image.fromarray(image[:, col:]).save(held)
    gt_boxes = neon_trees.boxes_in_columns(neon_trees.load_boxes(), col, image.shape[1])
    gt = Detections(gt_boxes, np.ones(len(gt_boxes), np.float32), np.zeros(len(gt_boxes), np.int32))
    rows = {"edgekit": [], "sahi": []}
    for _ in range(args.rounds):
        for tool in ("edgekit", "sahi"):
            cmd = [sys.executable, __file__, str(args.artifact), "--child", tool, "--image", str(args.image or held),
                   "--overlap", str(args.overlap), "--conf", str(args.conf)]
            out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            rows[tool].append(out)
    print(f"image {args.image or held}, tile {args.overlap}-px overlap, conf {args.conf}, {args.rounds} alternating rounds")
    print("| tool | mAP@0.5 | mAP@0.5:0.95 | boxes | wall s (median) | peak RSS MiB (max) |")
    print("|---|---|---|---|---|---|")
    for tool, runs in rows.items():
        b = np.asarray(runs[0]["boxes"], np.float32).reshape(-1, 6)
        det = Detections(b[:, :4], b[:, 4], b[:, 5].astype(np.int32))
        m = coco_map([gt], [det], [(image.shape[0], image.shape[1] - col)]) if args.image is None else {"map50": float("nan"), "map50_95": float("nan")}
        print(f"| {tool} | {m['map50']:.4f} | {m['map50_95']:.4f} | {len(det)} | "
              f"{np.median([r['seconds'] for r in runs]):.2f} | {max(r['peak_rss_mb'] for r in runs):.0f} |")


if __name__ == "__main__":
    main()
