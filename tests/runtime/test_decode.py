"""Every decoder on a tiny ONNX graph whose outputs are known tensors (raw heads encode known boxes)."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.decode import FORMATS, candidate_formats, decode, detect_format
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


# anchor-free rows at the 32x32 tile: 4x4 cells of stride 8, 2x2 of 16, 1 of 32 (21 rows)
LEVELS = ((8, 4), (16, 2), (32, 1))
# each true box in a cell of its own: (level stride, column, row)
CELLS = ((8, 1, 1), (16, 1, 0))


def _row(stride: int, gx: int, gy: int, levels=LEVELS) -> int:
    first = sum(side * side for s, side in levels if s < stride)
    return first + gy * dict(levels)[stride] + gx


def _anchor_free(pixels: bool):
    """(1, 21, 5 + 2): YOLOX's raw head (offsets and log sizes in cells) or the same boxes in pixels."""
    out = np.zeros((1, 21, 5 + 2), np.float32)
    for stride, side in LEVELS:  # background: a cell-sized box centred on its cell, objectness 0
        for gy in range(side):
            for gx in range(side):
                out[0, _row(stride, gx, gy), :4] = [(gx + 0.5) * stride, (gy + 0.5) * stride, stride, stride] \
                    if pixels else [0.5, 0.5, 0.0, 0.0]
    for (stride, gx, gy), box, score, cls in zip(CELLS, _cxcywh(TRUE_BOXES), TRUE_SCORES, TRUE_CLASSES):
        r = _row(stride, gx, gy)
        out[0, r, :4] = box if pixels else [box[0] / stride - gx, box[1] / stride - gy, *np.log(box[2:] / stride)]
        out[0, r, 4], out[0, r, 5 + cls] = 1.0, score
    out[0, _row(8, 3, 3), 4:6] = [1.0, 0.1]  # below conf
    return {"output": out}


def _yolox():
    return _anchor_free(pixels=False)


def _distribution(distance: float, bins: int) -> np.ndarray:
    """Logits whose softmax's expectation over 0..bins-1 is ``distance``: two neighbouring bins."""
    low = int(np.floor(distance))
    prob = np.zeros(bins)
    prob[low], prob[min(low + 1, bins - 1)] = 1 - (distance - low), distance - low
    return np.log(np.maximum(prob, 1e-30)).astype(np.float32)


def _picodet(bins: int = 4):
    """PicoDet's 8 outputs at the 32x32 tile: scores (1, N_i, 2), then distributions (1, N_i, 4 x bins),
    level i of stride 8 x 2^i (16, 4, 1 and 1 cells); each true box from the centre of its cell."""
    levels = ((8, 4), (16, 2), (32, 1), (64, 1))
    scores = {f"scores_{s}": np.zeros((1, side * side, 2), np.float32) for s, side in levels}
    dists = {f"boxes_{s}": np.tile(_distribution(0.5, bins), (1, side * side, 4)) for s, side in levels}
    for (stride, gx, gy), box, score, cls in zip(CELLS, TRUE_BOXES, TRUE_SCORES, TRUE_CLASSES):
        r = gy * dict(levels)[stride] + gx
        cx, cy = (gx + 0.5) * stride, (gy + 0.5) * stride
        sides = np.array([cx - box[0], cy - box[1], box[2] - cx, box[3] - cy]) / stride
        dists[f"boxes_{stride}"][0, r] = np.concatenate([_distribution(d, bins) for d in sides])
        scores[f"scores_{stride}"][0, r, cls] = score
    scores["scores_8"][0, 15, 0] = 0.1  # below conf
    return scores | dists


CASES = {"yolov8": _yolov8, "yolov5": _yolov5, "end2end": _end2end, "efficientnms": _efficientnms,
         "onnxnms": _onnxnms, "yolox": _yolox, "picodet": _picodet}


def _sorted(det):
    o = np.argsort(-det.scores)
    return det.boxes[o], det.scores[o], det.classes[o]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_decoder_recovers_the_known_boxes(tmp_path, fmt):
    out, specs = run_onnx(constant_onnx(tmp_path / "m.onnx", CASES[fmt]()))
    assert detect_format(specs, TILE, out) == fmt
    (det,) = decode(out, specs, fmt, conf=0.25, tile=TILE)
    boxes, scores, classes = _sorted(det)
    np.testing.assert_allclose(boxes, TRUE_BOXES, atol=1e-4)
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


# ---- anchor-free rows: YOLOX's raw head or boxes in pixels -----------------------------------------
def test_anchor_free_rows_are_told_apart_by_their_values(tmp_path):
    raw, specs = run_onnx(constant_onnx(tmp_path / "raw.onnx", _anchor_free(pixels=False)))
    pixels, _ = run_onnx(constant_onnx(tmp_path / "px.onnx", _anchor_free(pixels=True)))
    assert candidate_formats(specs, TILE) == ("yolox", "yolov5")
    assert detect_format(specs, TILE, raw) == "yolox" and detect_format(specs, TILE, pixels) == "yolov5"
    (det,) = decode(pixels, specs, "yolov5", conf=0.25, tile=TILE)  # YOLOv6-style: the same boxes
    np.testing.assert_allclose(_sorted(det)[0], TRUE_BOXES, atol=1e-4)
    (wrong,) = decode(pixels, specs, "yolox", conf=0.25, tile=TILE)  # pixels read as offsets: other boxes
    assert not np.allclose(_sorted(wrong)[0], TRUE_BOXES, atol=1)


def test_anchor_free_rows_without_values_ask_for_det_format_in_one_line(tmp_path):
    _, specs = run_onnx(constant_onnx(tmp_path / "raw.onnx", _yolox()))
    with pytest.raises(DetectionError) as err:
        detect_format(specs, TILE)
    msg = str(err.value)
    assert "(1, 21, 7) at 32x32" in msg and "strides 8, 16, 32" in msg and "\n" not in msg
    assert "yolox" in msg and "yolov5" in msg and "--det-format" in msg
    assert detect_format(specs) == "yolov5"  # no input size: no cells to count
    assert candidate_formats(specs, (64, 64)) == ("yolov5",)  # 21 rows are not the 84 cells of 64x64


def test_yolov5_anchors_are_three_rows_per_cell_and_stay_yolov5(tmp_path):
    out = np.zeros((1, 3 * 21, 7), np.float32)
    out[0, :2, :4], out[0, :2, 4] = _cxcywh(TRUE_BOXES), 1.0
    out[0, np.arange(2), 5 + TRUE_CLASSES] = TRUE_SCORES
    _, specs = run_onnx(constant_onnx(tmp_path / "v5.onnx", {"output0": out}))
    assert candidate_formats(specs, TILE) == ("yolov5",)


def test_yolox_rows_that_are_not_the_tile_s_cells_are_an_error(tmp_path):
    out, specs = run_onnx(constant_onnx(tmp_path / "raw.onnx", _yolox()))
    with pytest.raises(DetectionError, match="not one row per grid cell"):
        decode(out, specs, "yolox", conf=0.25, tile=(64, 64))


# ---- PicoDet -------------------------------------------------------------------------------------
def test_picodet_keeps_every_class_over_conf_of_a_cell(tmp_path):
    case = _picodet()
    case["scores_8"][0, 5, 0] = 0.7  # box 0's cell also says class 0: PaddleDetection keeps both
    out, specs = run_onnx(constant_onnx(tmp_path / "p.onnx", case))
    (det,) = decode(out, specs, "picodet", conf=0.25, tile=TILE)
    boxes, scores, classes = _sorted(det)
    np.testing.assert_allclose(boxes, TRUE_BOXES[[0, 0, 1]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.6], atol=1e-6)
    np.testing.assert_array_equal(classes, [1, 0, 0])


def _three_levels(case):  # PicoDet with 3 levels (8, 16, 32) is read as well
    return {k: v for k, v in case.items() if not k.endswith("_64")}


def _odd_bins(case):  # 15 values per cell are not 4 sides x bins
    return case | {"boxes_8": case["boxes_8"][:, :, :15]}


def _unpaired(case):  # level 1's scores hold other cells than its distributions
    return case | {"scores_16": case["scores_16"][:, :3]}


@pytest.mark.parametrize("change, readable", [(_three_levels, True), (_odd_bins, False), (_unpaired, False)])
def test_picodet_shapes_are_read_strictly(tmp_path, change, readable):
    out, specs = run_onnx(constant_onnx(tmp_path / "p.onnx", change(_picodet())))
    if readable:
        assert detect_format(specs, TILE) == "picodet"
        (det,) = decode(out, specs, "picodet", conf=0.25, tile=TILE)
        np.testing.assert_allclose(_sorted(det)[0], TRUE_BOXES, atol=1e-4)
    else:
        assert candidate_formats(specs, TILE) == ()


def test_picodet_levels_are_counted_in_the_tile_s_cells(tmp_path):
    out, specs = run_onnx(constant_onnx(tmp_path / "p.onnx", _picodet()))
    assert candidate_formats(specs, (64, 64)) == ()
    assert detect_format(specs) == "picodet"  # no input size: the shapes alone
    with pytest.raises(DetectionError, match="not PicoDet's levels at the 64x64 tile"):
        decode(out, specs, "picodet", conf=0.25, tile=(64, 64))


def test_nms_sees_the_boxes_as_decoded_before_they_are_clipped(tmp_path):
    """As the packages do: a box reaching past the tile suppresses with its whole extent, so a box
    inside it that overlaps only its clipped part is kept."""
    out = np.zeros((1, 4 + 1, 8), np.float32)
    out[0, :4, :] = [[16], [16], [2], [2]]
    out[0, :4, 0], out[0, 4, 0] = _cxcywh(np.array([[-20, 0, 12, 10]], np.float32))[0], 0.9  # clipped: 0, 0, 12, 10
    out[0, :4, 1], out[0, 4, 1] = _cxcywh(np.array([[0, 0, 12, 10]], np.float32))[0], 0.8   # IoU 0.375 unclipped
    out, specs = run_onnx(constant_onnx(tmp_path / "m.onnx", {"output0": out}))
    (det,) = decode(out, specs, "yolov8", conf=0.25, tile=TILE)
    np.testing.assert_allclose(_sorted(det)[0], [[0, 0, 12, 10], [0, 0, 12, 10]])
