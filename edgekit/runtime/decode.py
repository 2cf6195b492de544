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
``yolox``         YOLOX's raw head, one output (B, N, 5 + nc), one row per grid cell of strides 8, 16,
                  32 (64 for P6 models): x, y offsets in cells, log width and height in cells,
                  objectness, class scores; a box is ((x + gx) s, (y + gy) s, exp(w) s, exp(h) s).
``picodet``       PicoDet's raw head (PaddleDetection, exported without NMS): k >= 2 class scores
                  (B, N_i, nc), then k box distributions (B, N_i, 4 (reg_max + 1)), level i of stride
                  s = 8 x 2^i; each side's distance from the cell centre (left, top, right, bottom)
                  is the expectation of a softmax over 0..reg_max, in strides (DFL).

Anchor-free rows (one per grid cell) at the input size are YOLOX's raw head or boxes already in
pixels (YOLOv6, YOLOX exported with its decode): the shapes cannot tell, the values can
(:func:`detect_format` with ``outputs``); the build decides once and records it in the manifest.

Every decoder returns one :class:`Detections` per image, in tile pixels, clipped to the tile.
"""
from __future__ import annotations

__all__ = ["FORMATS", "Detections", "candidate_formats", "detect_format", "decode", "nms"]

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgekit.errors import DetectionError, DetectionOutputError

FORMATS = ("yolov8", "yolov5", "end2end", "efficientnms", "onnxnms", "yolox", "picodet")
END2END_MAX_K = 1000  # (B, K, 6) with K above this reads as YOLOv5 with one class
GRID_STRIDES = ((8, 16, 32), (8, 16, 32, 64))  # anchor-free heads (YOLOX, YOLOv6; P6 models add 64)
RAW_HEADS = ("yolov8", "yolov5", "yolox", "picodet")  # formats whose boxes need NMS


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


def _known(hw) -> bool:
    return hw is not None and len(hw) == 2 and all(isinstance(v, int) and v > 0 for v in hw)


def _cells(hw: tuple[int, int], stride: int) -> tuple[int, int]:
    """Rows and columns of the grid of ``stride`` over an input of ``hw`` (stride-2 convolutions round up)."""
    return -(-hw[0] // stride), -(-hw[1] // stride)


def _count(hw: tuple[int, int], stride: int) -> int:
    rows, cols = _cells(hw, stride)
    return rows * cols


def _grid_strides(n, hw) -> tuple[int, ...] | None:
    """The strides of an anchor-free head with one row per grid cell, when ``n`` is their cell count at ``hw``."""
    if not _known(hw) or not isinstance(n, int):
        return None
    return next((s for s in GRID_STRIDES if sum(_count(hw, t) for t in s) == n), None)


def _grid(hw: tuple[int, int], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column, row and stride of every cell, level after level, each level row by row."""
    gx, gy, st = [], [], []
    for stride in strides:
        rows, cols = _cells(hw, stride)
        y, x = np.divmod(np.arange(rows * cols), cols)
        gx.append(x)
        gy.append(y)
        st.append(np.full(rows * cols, stride))
    return tuple(np.concatenate(v).astype(np.float32) for v in (gx, gy, st))


def _picodet_levels(specs: Sequence, hw=None) -> list[tuple] | None:
    """(scores spec, distributions spec, stride) per level when ``specs`` are PicoDet's raw head, as
    PaddleDetection exports it and its packages read it: k >= 2 scores (B, N_i, nc), then k
    distributions (B, N_i, 4 x bins), level i of stride 8 x 2^i; at a known input size each N_i is
    that stride's cell count."""
    k = len(specs) // 2
    dims = [tuple(s.shape) for s in specs]
    if k < 2 or len(specs) % 2 or not all(len(d) == 3 and all(isinstance(v, int) for v in d[1:]) for d in dims):
        return None
    scores, boxes = dims[:k], dims[k:]
    paired = all(s[1] == b[1] for s, b in zip(scores, boxes)) and all(a[1] >= b[1] for a, b in zip(scores, scores[1:]))
    widths = {d[2] for d in boxes}  # 4 sides x bins
    if not paired or len({d[2] for d in scores}) != 1 or len(widths) != 1 or min(widths) % 4 or min(widths) < 8:
        return None
    strides = [8 * 2 ** i for i in range(k)]
    if _known(hw) and any(d[1] != _count(hw, s) for d, s in zip(scores, strides)):
        return None
    return list(zip(specs[:k], specs[k:], strides))


def candidate_formats(specs: Sequence, input_hw: tuple | None = None) -> tuple[str, ...]:
    """The formats whose shapes the outputs have: none, one, or two for anchor-free rows
    (``yolox``, ``yolov5``), which only the values tell apart (:func:`detect_format`)."""
    dims = [tuple(s.shape) for s in specs]
    if len(specs) == 4 and _role(specs, "num") is not None:
        return ("efficientnms",)
    if len(specs) == 3 and any(len(d) == 2 and d[-1] == 3 for d in dims):
        return ("onnxnms",)
    if _picodet_levels(specs, input_hw) is not None:
        return ("picodet",)
    if len(specs) == 1 and len(dims[0]) == 3 and all(isinstance(v, int) for v in dims[0][1:]):
        _, a, b = dims[0]
        if a > b >= 6 and _grid_strides(a, input_hw):
            return ("yolox", "yolov5")  # one row per grid cell: anchor-free (YOLOv5's anchors give 3 per cell)
        if b == 6 and a <= END2END_MAX_K:
            return ("end2end",)
        if 5 <= a < b:
            return ("yolov8",)
        if a > b >= 6:
            return ("yolov5",)
    return ()


def detect_format(specs: Sequence, input_hw: tuple | None = None, outputs: dict | None = None) -> str:
    """The output layout of a model, or :class:`DetectionError`.

    Args:
        specs: the output specs (name, shape), in order.
        input_hw: the input's height and width, where known: anchor-free rows and PicoDet's levels
            are counted in grid cells of it (without it, (B, N, 5 + nc) reads as ``yolov5``).
        outputs: the model's outputs by name on real inputs: they decide what the shapes cannot.
            Anchor-free rows are ``yolox`` when their x, y are offsets within their cells and
            ``yolov5`` when they are pixels that follow their cells across the input.
    """
    found = candidate_formats(specs, input_hw)
    if len(found) == 1:
        return found[0]
    if not found:
        raise DetectionError(f"unknown detection output layout: {_shapes(specs)}; known formats: "
                             f"{', '.join(FORMATS)} (name one with --det-format)")
    if outputs is not None:
        return _anchor_free(outputs[specs[0].name], input_hw)
    strides = ", ".join(map(str, _grid_strides(specs[0].shape[1], input_hw)))
    raise DetectionError(f"{_shapes(specs)} at {input_hw[0]}x{input_hw[1]} holds one box per grid cell of strides "
                         f"{strides}: YOLOX's raw head (yolox: offsets and log sizes in cells) or boxes already in "
                         "input pixels (yolov5: YOLOv6, YOLOX exported with its decode), which the shapes cannot tell "
                         "apart; name one with --det-format, or rebuild the artifact (the build decides from its outputs)")


def _anchor_free(values: np.ndarray, hw: tuple[int, int]) -> str:
    """``yolox`` or ``yolov5`` for anchor-free rows, by which reading puts the centres in their own cells."""
    pred = np.asarray(values, np.float32)
    if not np.isfinite(pred[..., :2]).all():
        raise DetectionOutputError("the detector returned non-finite box centres; check the model "
                                   "(an FP16/INT8 overflow?)")
    gx, gy, s = _grid(hw, _grid_strides(pred.shape[1], hw))
    as_pixels = np.median(np.abs(pred[..., 0] / s - gx - 0.5) + np.abs(pred[..., 1] / s - gy - 0.5))
    as_offsets = np.median(np.abs(pred[..., 0] - 0.5) + np.abs(pred[..., 1] - 0.5))
    return "yolox" if as_offsets < as_pixels else "yolov5"


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


def _yolov8(out: dict, specs, conf: float, tile: tuple[int, int]) -> list[tuple]:
    pred = out[specs[0].name].astype(np.float32)
    res = []
    for p in pred:
        scores_all = p[4:].T
        cls = scores_all.argmax(1)
        score = scores_all[np.arange(len(cls)), cls]
        keep = _over(score, conf)
        res.append((_xyxy(p[:4].T[keep]), score[keep], cls[keep]))
    return res


def _objectness(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Score (objectness x best class score) and class of each (5 + nc) row."""
    cls = p[:, 5:].argmax(1)
    return p[:, 4] * p[np.arange(len(cls)), 5 + cls], cls


def _yolov5(out: dict, specs, conf: float, tile: tuple[int, int]) -> list[tuple]:
    pred = out[specs[0].name].astype(np.float32)
    res = []
    for p in pred:
        score, cls = _objectness(p)
        keep = _over(score, conf)
        res.append((_xyxy(p[keep, :4]), score[keep], cls[keep]))
    return res


def _yolox(out: dict, specs, conf: float, tile: tuple[int, int]) -> list[tuple]:
    pred = out[specs[0].name].astype(np.float32)
    strides = _grid_strides(pred.shape[1], tile)
    if strides is None:
        raise DetectionError(f"{specs[0].name} {tuple(pred.shape)} is not one row per grid cell of strides 8..32 or "
                             f"8..64 at the {tile[1]}x{tile[0]} tile, as YOLOX's raw head is; choose another --det-format")
    gx, gy, s = _grid(tile, strides)
    res = []
    for p in pred:
        score, cls = _objectness(p)
        keep = _over(score, conf)
        q, cell, stride = p[keep], np.stack([gx[keep], gy[keep]], 1), s[keep, None]
        with np.errstate(over="ignore"):  # an overflow is an infinite box, which decode refuses
            size = np.exp(q[:, 2:4]) * stride
        res.append((_xyxy(np.concatenate([(q[:, :2] + cell) * stride, size], 1)), score[keep], cls[keep]))
    return res


def _picodet(out: dict, specs, conf: float, tile: tuple[int, int]) -> list[tuple]:
    """Every class over ``conf`` of every cell (PaddleDetection's per-class NMS keeps each), its box
    the cell centre minus / plus the expected distance of each side's distribution (softmax over bins)."""
    levels = _picodet_levels(specs, tile)
    if levels is None:
        raise DetectionError(f"{_shapes(specs)} are not PicoDet's levels at the {tile[1]}x{tile[0]} tile (scores, then "
                             "distributions, level i the cells of stride 8 x 2^i); choose another --det-format")
    res = []
    for b in range(out[levels[0][0].name].shape[0]):
        found = []
        for score_spec, box_spec, stride in levels:
            score = out[score_spec.name][b].astype(np.float32)
            cell, cls = np.nonzero(_over(score, conf))
            gx, gy, _ = _grid(tile, (stride,))
            bins = box_spec.shape[2] // 4
            logits = out[box_spec.name][b][cell].astype(np.float32).reshape(len(cell), 4, bins)
            prob = np.exp(logits - logits.max(-1, keepdims=True))
            dist = (prob / prob.sum(-1, keepdims=True)) @ np.arange(bins, dtype=np.float32) * stride
            centre = np.stack([gx[cell], gy[cell]] * 2, 1) * stride + stride / 2
            found.append((centre + dist * np.array([-1, -1, 1, 1], np.float32), score[cell, cls], cls))
        res.append(tuple(np.concatenate(parts) for parts in zip(*found)))
    return res


def _end2end(out: dict, specs, conf: float, tile: tuple[int, int]) -> list[tuple]:
    pred = out[specs[0].name].astype(np.float32)
    res = []
    for p in pred:
        keep = _over(p[:, 4], conf)
        res.append((p[keep, :4], p[keep, 4], p[keep, 5]))
    return res


def _efficientnms(out: dict, specs, conf: float, tile: tuple[int, int]) -> list[tuple]:
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


def _onnxnms(out: dict, specs, conf: float, tile: tuple[int, int]) -> list[tuple]:
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
        raise DetectionOutputError("the detector returned NaN scores; check the model (an FP16/INT8 overflow?) "
                                   "or rebuild it at a higher precision")
    return score >= conf


DECODERS = {"yolov8": _yolov8, "yolov5": _yolov5, "end2end": _end2end, "efficientnms": _efficientnms,
            "onnxnms": _onnxnms, "yolox": _yolox, "picodet": _picodet}


def _checked(boxes, scores, classes, tile: tuple[int, int]) -> Detections:
    """The boxes as :class:`Detections`; a box that is not finite, inverted, or wholly beyond a
    tile's width from the tile (another coordinate system) is an error."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    h, w = tile
    bad = ~np.isfinite(boxes).all(1) | (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    bad |= (boxes[:, 2] < -w) | (boxes[:, 3] < -h) | (boxes[:, 0] > 2 * w) | (boxes[:, 1] > 2 * h)
    if bad.any():
        b = boxes[np.argmax(bad)]
        raise DetectionOutputError(f"the detector returned a box outside the {w}x{h} tile "
                                   f"({', '.join(f'{v:g}' for v in b)}); is --det-format right, and are its boxes "
                                   "in input pixels?")
    return Detections(boxes, np.asarray(scores, np.float32), np.asarray(classes).astype(np.int32))


def _clipped(det: Detections, tile: tuple[int, int]) -> Detections:
    """The boxes clipped to the tile, empty ones dropped."""
    h, w = tile
    boxes = np.clip(det.boxes, 0, np.array([w, h, w, h], np.float32))
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Detections(boxes[keep], det.scores[keep], det.classes[keep])


def decode(outputs: dict[str, np.ndarray], specs: Sequence, fmt: str, conf: float, tile: tuple[int, int],
           iou: float | None = 0.5) -> list[Detections]:
    """Boxes per image of a batch, in tile pixels, over ``conf``, after per-class NMS (``iou``; None:
    none) on the boxes as decoded, then clipped to the tile (the packages' order: a box past the
    border suppresses with its whole extent).

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
    for boxes, scores, classes in DECODERS[fmt](outputs, list(specs), conf, tuple(tile)):
        det = _checked(boxes, scores, classes, tile)
        if iou is not None and fmt in RAW_HEADS and len(det):
            keep = np.concatenate([np.flatnonzero(det.classes == c)[nms(det.boxes[det.classes == c],
                                   det.scores[det.classes == c], iou)] for c in np.unique(det.classes)])
            det = det.take(np.sort(keep))
        result.append(_clipped(det, tile))
    return result
