"""A detector's precision check decodes FP32's and the candidate's outputs in the layout decided once
from FP32's values: YOLOX's raw head is not read as boxes in pixels (which would compare nothing)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.convert.verify_detection import verify_detection
from edgekit.images.image_set import CalibrationSet
from edgekit.preprocess import Preprocess
from tests.detect.detect_fixtures import anchor_free_finder_onnx


@pytest.fixture
def held_out(tmp_path):
    """32x32 images, each with one white 8x8 square filling a cell of stride 8."""
    folder = tmp_path / "val"
    folder.mkdir()
    for i, (row, col) in enumerate([(0, 8), (16, 24), (8, 0), (24, 16)]):
        img = np.full((32, 32, 3), 20, np.uint8)
        img[row:row + 8, col:col + 8] = 255
        Image.fromarray(img).save(folder / f"t{i}.png")
    return CalibrationSet(folder, (32, 32), Preprocess(mean=(0.0,) * 3, std=(1.0,) * 3))


def test_a_yolox_candidate_that_finds_the_boxes_agrees(tmp_path, held_out):
    reference = anchor_free_finder_onnx(tmp_path / "ref.onnx")
    check = verify_detection(reference, reference, held_out, max_drop=1.0)
    assert check.drop == 0.0


def test_a_yolox_candidate_that_lost_the_boxes_is_caught(tmp_path, held_out):
    reference = anchor_free_finder_onnx(tmp_path / "ref.onnx")
    blind = anchor_free_finder_onnx(tmp_path / "blind.onnx", bright=2.0)  # no cell is ever that bright
    check = verify_detection(reference, blind, held_out, max_drop=1.0)
    assert check.drop == pytest.approx(100.0)
