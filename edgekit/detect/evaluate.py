"""COCO mAP of detections against reference boxes, through pycocotools (not a metric of our own)."""
from __future__ import annotations

__all__ = ["coco_map"]

import contextlib
import io
from typing import Sequence


from edgekit.detect.decode import Detections
from edgekit.errors import ConfigError


def coco_map(truth: Sequence[Detections], predictions: Sequence[Detections],
             sizes: Sequence[tuple[int, int]] | None = None) -> dict[str, float]:
    """mAP@0.5 and mAP@0.5:0.95 (COCO, all areas, up to 1000 boxes per image) of ``predictions``.

    Args:
        truth: reference boxes per image (scores ignored).
        predictions: detected boxes per image, with scores.
        sizes: (height, width) per image, for COCO's image records (default: the boxes' extent).
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ConfigError("COCO mAP needs pycocotools: pip install 'edgekit[detect]'") from None
    images, gts, dts = [], [], []
    classes = set()
    for i, (t, p) in enumerate(zip(truth, predictions), start=1):
        h, w = sizes[i - 1] if sizes else (int(max(t.boxes[:, 3].max(initial=1), 1)), int(max(t.boxes[:, 2].max(initial=1), 1)))
        images.append({"id": i, "height": int(h), "width": int(w)})
        for b, c in zip(t.boxes, t.classes):
            x, y, bw, bh = float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])
            gts.append({"id": len(gts) + 1, "image_id": i, "category_id": int(c) + 1, "bbox": [x, y, bw, bh],
                        "area": bw * bh, "iscrowd": 0})
            classes.add(int(c))
        for b, s, c in zip(p.boxes, p.scores, p.classes):
            dts.append({"image_id": i, "category_id": int(c) + 1, "score": float(s),
                        "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
            classes.add(int(c))
    if not gts:
        return {"map50": float("nan"), "map50_95": float("nan")}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": gts,
                        "categories": [{"id": c + 1, "name": str(c)} for c in sorted(classes)]}
        coco.createIndex()
        if not dts:
            return {"map50": 0.0, "map50_95": 0.0}
        res = coco.loadRes(dts)
        ev = COCOeval(coco, res, "bbox")
        ev.params.maxDets = [1, 100, 1000]
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return {"map50": float(ev.stats[1]), "map50_95": float(ev.stats[0])}
