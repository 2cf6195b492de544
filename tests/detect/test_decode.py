"""Every decoder on a tiny ONNX graph whose outputs are known tensors."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.detect.decode import FORMATS, decode, detect_format
from edgekit.errors import DetectionError
from tests.detect.detect_fixtures import constant_onnx, run_onnx

TILE = (32, 32)
# two objects: class 1 at (4, 6)-(12, 14) score 0.9, class 0 at (20, 2)-(30, 10) score 0.6
TRUE_BOXES = np.array([[4, 6, 12, 14], [20, 2, 30, 10]], np.float32)
TRUE_SCORES = np.array([0.9, 0.6], np.float32)
TRUE_CLASSES = np.array([1, 0])


def _cxcywh(b):
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def _yolov8():
    n = 8  # two true candidates, one below conf, five empty
    out = np.zeros((1, 4 + 2, n), np.float32)
    out[0, :4, :2] = _cxcywh(TRUE_BOXES).T
    out[0, 4 + TRUE_CLASSES, np.arange(2)] = TRUE_SCORES
    out[0, :4, 2] = [16, 16, 4, 4]
    out[0, 4, 2] = 0.1
    out[0, :4, 3:] = [[16], [16], [2], [2]]
    return {"output0": out}


def _yolov5():
    out = np.zeros((1, 40, 5 + 2), np.float32)
    out[0, :2, :4] = _cxcywh(TRUE_BOXES)
    out[0, :2, 4] = 1.0
    out[0, np.arange(2), 5 + TRUE_CLASSES] = TRUE_SCORES
    out[0, 2:, :4] = [16, 16, 2, 2]
    return {"output0": out}


def _end2end():
    out = np.zeros((1, 100, 6), np.float32)
    out[0, :2, :4], out[0, :2, 4], out[0, :2, 5] = TRUE_BOXES, TRUE_SCORES, TRUE_CLASSES
    return {"output0": out}


def _efficientnms():
    boxes = np.zeros((1, 10, 4), np.float32)
    scores = np.zeros((1, 10), np.float32)
    classes = np.zeros((1, 10), np.int32)
    boxes[0, :2], scores[0, :2], classes[0, :2] = TRUE_BOXES, TRUE_SCORES, TRUE_CLASSES
    boxes[0, 2:] = 99.0  # padding past num_dets must be ignored
    return {"num_dets": np.array([[2]], np.int32), "det_boxes": boxes, "det_scores": scores, "det_classes": classes}


def _onnxnms():
    boxes = np.zeros((1, 5, 4), np.float32)
    boxes[0, [1, 3]] = TRUE_BOXES
    scores = np.zeros((1, 2, 5), np.float32)
    scores[0, 1, 1], scores[0, 0, 3] = TRUE_SCORES
    return {"boxes": boxes, "scores": scores, "selected_indices": np.array([[0, 1, 1], [0, 0, 3]], np.int64)}


CASES = {"yolov8": _yolov8, "yolov5": _yolov5, "end2end": _end2end, "efficientnms": _efficientnms,
         "onnxnms": _onnxnms}


def _sorted(det):
    o = np.argsort(-det.scores)
    return det.boxes[o], det.scores[o], det.classes[o]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_decoder_recovers_the_known_boxes(tmp_path, fmt):
    out, specs = run_onnx(constant_onnx(tmp_path / "m.onnx", CASES[fmt]()))
    assert detect_format(specs) == fmt
    (det,) = decode(out, specs, fmt, conf=0.25, tile=TILE)
    boxes, scores, classes = _sorted(det)
    np.testing.assert_allclose(boxes, TRUE_BOXES, atol=1e-5)
    np.testing.assert_allclose(scores, TRUE_SCORES, atol=1e-6)
    np.testing.assert_array_equal(classes, TRUE_CLASSES)


def test_conf_threshold_drops_low_scores(tmp_path):
    out, specs = run_onnx(constant_onnx(tmp_path / "m.onnx", _yolov8()))
    (det,) = decode(out, specs, "yolov8", conf=0.7, tile=TILE)
    np.testing.assert_array_equal(det.classes, [1])


def test_unknown_layout_names_shapes_and_formats(tmp_path):
    out, specs = run_onnx(constant_onnx(tmp_path / "m.onnx", {"a": np.zeros((1, 3, 3), np.float32),
                                                               "b": np.zeros((2,), np.float32)}))
    with pytest.raises(DetectionError) as err:
        detect_format(specs)
    msg = str(err.value)
    assert "(1, 3, 3)" in msg and "(2,)" in msg and all(f in msg for f in FORMATS) and "\n" not in msg


def test_nan_scores_are_an_error(tmp_path):
    case = _yolov8()
    case["output0"][0, 4, 1] = np.nan
    out, specs = run_onnx(constant_onnx(tmp_path / "m.onnx", case))
    with pytest.raises(DetectionError, match="NaN"):
        decode(out, specs, "yolov8", conf=0.25, tile=TILE)


def test_box_outside_the_tile_is_an_error(tmp_path):
    case = _end2end()
    case["output0"][0, 0, :4] = [70, 70, 80, 80]  # more than a tile beyond the 32x32 tile
    out, specs = run_onnx(constant_onnx(tmp_path / "m.onnx", case))
    with pytest.raises(DetectionError, match="outside the 32x32 tile"):
        decode(out, specs, "end2end", conf=0.25, tile=TILE)


def test_boxes_overhanging_the_tile_are_clipped(tmp_path):
    case = _end2end()
    case["output0"][0, 0, :4] = [-3, 28, 8, 36]
    out, specs = run_onnx(constant_onnx(tmp_path / "m.onnx", case))
    (det,) = decode(out, specs, "end2end", conf=0.25, tile=TILE)
    np.testing.assert_allclose(det.boxes[det.scores.argmax()], [0, 28, 8, 32])
    case["output0"][0, 0, :4] = [-9, 3, -1, 8]  # wholly left of the tile, but near: dropped, not an error
    out, specs = run_onnx(constant_onnx(tmp_path / "m2.onnx", case))
    (det,) = decode(out, specs, "end2end", conf=0.25, tile=TILE)
    assert len(det) == 1


def test_per_tile_nms_removes_duplicates_of_raw_heads(tmp_path):
    case = _yolov8()
    case["output0"][0, :4, 3] = _cxcywh(TRUE_BOXES[:1] + 0.5)[0]  # a near copy of box 0, lower score
    case["output0"][0, 5, 3] = 0.8
    out, specs = run_onnx(constant_onnx(tmp_path / "m.onnx", case))
    (det,) = decode(out, specs, "yolov8", conf=0.25, tile=TILE)
    assert len(det) == 2
    (raw,) = decode(out, specs, "yolov8", conf=0.25, tile=TILE, iou=None)
    assert len(raw) == 3
