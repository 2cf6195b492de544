"""Decoders for the output layouts detectors are deployed with. NumPy only (runs on the device).

Formats (``--det-format``; by default chosen from the output shapes and names):

``yolov8``        one output (B, 4 + nc, N): centre x, y, width, height, then class scores
                  (YOLOv8 / YOLO11 raw head, no objectness).
``yolov5``        one output (B, N, 5 + nc): centre x, y, width, height, objectness, class scores.
``end2end``       one output (B, K, 6): x1, y1, x2, y2, score, class (exported with NMS).
``efficientnms``  TensorRT's EfficientNMS plugin: num_dets (B, 1), boxes (B, K, 4) x1y1x2y2,
                  scores (B, K), classes (B, K).
``onnxnms``       ONNX ``NonMaxSuppression``: boxes (B, N, 4) x1y1x2y2, scores (B, nc, N) and the
                  selected indices (M, 3) = (batch, class, box).

Every decoder returns one :class:`Detections` per image, in tile pixels, clipped to the tile.
"""
from __future__ import annotations

__all__ = ["FORMATS", "Detections", "detect_format", "decode", "nms"]

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgekit.errors import DetectionError

FORMATS = ("yolov8", "yolov5", "end2end", "efficientnms", "onnxnms")
END2END_MAX_K = 1000  # (B, K, 6) with K above this reads as YOLOv5 with one class


@dataclass(frozen=True)
class Detections:
    """Boxes of one image: (K, 4) float32 x1, y1, x2, y2; (K,) float32 scores; (K,) int32 classes."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    @classmethod
    def concat(cls, parts: Sequence["Detections"]) -> "Detections":
        """The boxes of ``parts`` in one Detections (empty when there are none)."""
        if not parts:
            return cls.empty()
        return cls(np.concatenate([d.boxes for d in parts]), np.concatenate([d.scores for d in parts]),
                   np.concatenate([d.classes for d in parts]))

    def take(self, index) -> "Detections":
        return Detections(self.boxes[index], self.scores[index], self.classes[index])

    def shifted(self, dx: float, dy: float) -> "Detections":
        return Detections(self.boxes + np.array([dx, dy, dx, dy], np.float32), self.scores, self.classes)


def _shapes(specs: Sequence) -> str:
    return ", ".join(f"{s.name} {tuple(s.shape)}" for s in specs)


def _role(specs: Sequence, *keys: str):
    for s in specs:
        if any(k in s.name.lower() for k in keys):
            return s
    return None


def detect_format(specs: Sequence) -> str:
    """The output layout of a model from its output specs (name, shape), or :class:`DetectionError`."""
    dims = [tuple(s.shape) for s in specs]
    if len(specs) == 4 and _role(specs, "num") is not None:
        return "efficientnms"
    if len(specs) == 3 and any(len(d) == 2 and d[-1] == 3 for d in dims):
        return "onnxnms"
    if len(specs) == 1 and len(dims[0]) == 3 and all(isinstance(v, int) for v in dims[0][1:]):
        _, a, b = dims[0]
        if b == 6 and a <= END2END_MAX_K:
            return "end2end"
        if 5 <= a < b:
            return "yolov8"
        if a > b >= 6:
            return "yolov5"
    raise DetectionError(f"unknown detection output layout: {_shapes(specs)}; known formats: "
                         f"{', '.join(FORMATS)} (name one with --det-format)")


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy IoU NMS, best first; ties broken by position (y1, x1)."""
    order = np.lexsort((boxes[:, 0], boxes[:, 1], -scores))
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= threshold]
    return np.asarray(keep, np.int64)


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    half = cxcywh[:, 2:4] / 2
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


def _yolov8(out: dict, specs, conf: float) -> list[tuple]:
    pred = out[specs[0].name].astype(np.float32)
    res = []
    for p in pred:
        scores_all = p[4:].T
        cls = scores_all.argmax(1)
        score = scores_all[np.arange(len(cls)), cls]
        keep = _over(score, conf)
        res.append((_xyxy(p[:4].T[keep]), score[keep], cls[keep]))
    return res


def _yolov5(out: dict, specs, conf: float) -> list[tuple]:
    pred = out[specs[0].name].astype(np.float32)
    res = []
    for p in pred:
        cls = p[:, 5:].argmax(1)
        score = p[:, 4] * p[np.arange(len(cls)), 5 + cls]
        keep = _over(score, conf)
        res.append((_xyxy(p[keep, :4]), score[keep], cls[keep]))
    return res


def _end2end(out: dict, specs, conf: float) -> list[tuple]:
    pred = out[specs[0].name].astype(np.float32)
    res = []
    for p in pred:
        keep = _over(p[:, 4], conf)
        res.append((p[keep, :4], p[keep, 4], p[keep, 5]))
    return res


def _efficientnms(out: dict, specs, conf: float) -> list[tuple]:
    num = out[_role(specs, "num").name].reshape(-1)
    boxes = out[_role(specs, "box").name].astype(np.float32)
    scores = out[_role(specs, "score").name].astype(np.float32)
    classes = out[_role(specs, "class").name]
    res = []
    for b, n in enumerate(num):
        s = scores[b, : int(n)]
        keep = _over(s, conf)
        res.append((boxes[b, : int(n)][keep], s[keep], classes[b, : int(n)][keep]))
    return res


def _onnxnms(out: dict, specs, conf: float) -> list[tuple]:
    index_spec = next(s for s in specs if len(s.shape) == 2 and s.shape[-1] == 3)
    idx = out[index_spec.name].astype(np.int64).reshape(-1, 3)
    rest = [s for s in specs if s is not index_spec]
    box_spec = next(s for s in rest if s.shape[-1] == 4)
    boxes = out[box_spec.name].astype(np.float32)
    scores = out[next(s for s in rest if s is not box_spec).name].astype(np.float32)
    idx = idx[idx[:, 0] >= 0]
    res = []
    for b in range(boxes.shape[0]):
        sel = idx[idx[:, 0] == b]
        s = scores[b, sel[:, 1], sel[:, 2]]
        keep = _over(s, conf)
        res.append((boxes[b, sel[keep, 2]], s[keep], sel[keep, 1]))
    return res


def _over(score: np.ndarray, conf: float) -> np.ndarray:
    if np.isnan(score).any():
        raise DetectionError("the detector returned NaN scores; check the model (an FP16/INT8 overflow?) "
                             "or rebuild it at a higher precision")
    return score >= conf


DECODERS = {"yolov8": _yolov8, "yolov5": _yolov5, "end2end": _end2end, "efficientnms": _efficientnms,
            "onnxnms": _onnxnms}


def _checked(boxes, scores, classes, tile: tuple[int, int]) -> Detections:
    """Clip boxes to the tile, dropping empty ones; a box that is not finite, inverted, or wholly
    beyond a tile's width from the tile (another coordinate system) is an error."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    h, w = tile
    bad = ~np.isfinite(boxes).all(1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    bad |= (boxes[:, 2] < -w) | (boxes[:, 3] < -h) | (boxes[:, 0] > 2 * w) | (boxes[:, 1] > 2 * h)
    if bad.any():
        b = boxes[np.argmax(bad)]
        raise DetectionError(f"the detector returned a box outside the {w}x{h} tile ({', '.join(f'{v:g}' for v in b)}); "
                             "is --det-format right, and are its boxes in input pixels?")
    boxes = np.clip(boxes, 0, np.array([w, h, w, h], np.float32))
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Detections(boxes[keep], np.asarray(scores, np.float32)[keep], np.asarray(classes).astype(np.int32)[keep])


def decode(outputs: dict[str, np.ndarray], specs: Sequence, fmt: str, conf: float, tile: tuple[int, int],
           iou: float | None = 0.5) -> list[Detections]:
    """Boxes per image of a batch, in tile pixels, over ``conf``, after per-class NMS (``iou``; None: none).

    Args:
        outputs: the runner's outputs by name.
        specs: the model's output specs (names, shapes), in order.
        fmt: one of :data:`FORMATS`.
        conf: minimum score.
        tile: the model's input height and width.
        iou: IoU threshold of the per-tile NMS; the NMS formats' own suppression is kept as is.
    """
    if fmt not in DECODERS:
        raise DetectionError(f"unknown --det-format {fmt!r}; known formats: {', '.join(FORMATS)}")
    result = []
    for boxes, scores, classes in DECODERS[fmt](outputs, list(specs), conf):
        det = _checked(boxes, scores, classes, tile)
        if iou is not None and fmt in ("yolov8", "yolov5") and len(det):
            keep = np.concatenate([np.flatnonzero(det.classes == c)[nms(det.boxes[det.classes == c],
                                   det.scores[det.classes == c], iou)] for c in np.unique(det.classes)])
            det = det.take(np.sort(keep))
        result.append(det)
    return result
