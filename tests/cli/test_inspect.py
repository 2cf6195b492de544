"""`edgekit inspect`: what edgekit believes about a model, with where each belief came from; nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.cli.main import main
from tests.conftest import squeeze_excited, tiny_segmenter_onnx
from tests.convert.test_contract import ULTRALYTICS_META, dynamic_yolo_onnx, with_metadata
from tests.detect.detect_fixtures import square_finder_onnx


@pytest.fixture
def yolo(tmp_path) -> Path:
    return with_metadata(square_finder_onnx(tmp_path / "yolo.onnx", size=64), ULTRALYTICS_META)


def _inspect(capsys, *args) -> tuple[int, str, str]:
    code = main(["inspect", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_an_ultralytics_detector_is_described_from_its_metadata(yolo, tmp_path, capsys):
    before = sorted(tmp_path.iterdir())
    code, out, err = _inspect(capsys, yolo)
    assert code == 0 and err == ""  # declared by the model: nothing assumed, no warning
    assert "outputs: output0 [1, 5, 4096]" in out
    assert "task: detection (ONNX metadata (Ultralytics))" in out
    assert "mean: 0, 0, 0 (ONNX metadata (Ultralytics: RGB in 0..1))" in out
    assert "classes: 3: person, bicycle, car (ONNX metadata (Ultralytics))" in out
    assert "detection layout: yolov8 (edgekit/runtime/decode.py)" in out
    assert sorted(tmp_path.iterdir()) == before  # nothing built, nothing written


def test_json_output_is_machine_readable(yolo, capsys):
    code, out, _ = _inspect(capsys, yolo, "--json", "--std", "0.5,0.5,0.5")
    view = json.loads(out)
    assert code == 0 and view["task"] == "detection" and view["detection_layout"] == "yolov8"
    assert view["preprocess"]["std"] == [0.5] * 3 and view["preprocess"]["source"]["std"] == "--std"
    assert view["preprocess"]["assumed"] is False and view["said"]["metadata"]["author"] == "Ultralytics"


def test_an_onnx_that_says_nothing_is_shown_assumed_with_one_warning(tmp_path, capsys):
    code, out, err = _inspect(capsys, tiny_segmenter_onnx(tmp_path / "plain.onnx"), "--json")
    view = json.loads(out)
    assert code == 0 and view["preprocess"]["assumed"] is True and view["preprocess"]["mean"] == [0, 0, 0]
    assert "detection_layout" not in view  # no decoder reads a mask
    assert len(err.strip().splitlines()) == 1 and "--mean/--std/--channel-order" in err


def test_a_detector_none_of_the_decoders_reads_is_said(tmp_path, capsys):
    path = with_metadata(tiny_segmenter_onnx(tmp_path / "odd.onnx"), ULTRALYTICS_META)
    code, out, _ = _inspect(capsys, path)
    assert code == 0 and "detection layout: none (unknown detection output layout: logits" in out


def test_symbolic_output_sizes_are_pinned_at_the_model_s_imgsz_for_the_layout(tmp_path, capsys):
    path = with_metadata(dynamic_yolo_onnx(tmp_path / "dyn.onnx"), ULTRALYTICS_META | {"imgsz": "[64, 48]"})
    code, out, _ = _inspect(capsys, path)
    assert code == 0 and "outputs: output0 [1, 5, 768] (at 64x48; symbolic in the file)" in out
    assert "detection layout: yolov8 (edgekit/runtime/decode.py)" in out
    code, out, _ = _inspect(capsys, path, "--input-size", "32x32")  # the option pins it instead
    assert "output0 [1, 5, 256] (at 32x32" in out


def test_anchor_free_rows_show_both_layouts_the_build_decides_between(tmp_path, capsys):
    from tests.runtime.test_decode import _yolox
    from tests.detect.detect_fixtures import constant_onnx

    code, out, _ = _inspect(capsys, constant_onnx(tmp_path / "yolox.onnx", _yolox()), "--task", "detection")
    assert code == 0 and "detection layout: yolox or yolov5 (the shapes fit both; `edgekit build` decides" in out


def test_a_recipe_is_run_once_for_its_outputs(tiny_recipe, capsys):
    code, out, err = _inspect(capsys, tiny_recipe)
    assert code == 0 and err == ""
    assert "outputs: output [1, 3, 64, 64] (deployed)" in out
    assert "task: segmentation (recipe tiny_fpn.yaml)" in out and "mean: 0.5, 0.5, 0.5 (recipe tiny_fpn.yaml)" in out


def test_a_timm_name_shows_timm_s_own_normalisation(capsys):
    code, out, _ = _inspect(capsys, "timm:vit_small_patch16_224", "--json")
    view = json.loads(out)
    assert code == 0 and view["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert view["preprocess"]["source"]["mean"].startswith("timm pretrained_cfg of vit_small_patch16_224")
    assert view["outputs"][0]["shape"] == [1, 1000]


def test_a_mean_of_the_wrong_length_is_one_line(yolo, capsys):
    code, out, err = _inspect(capsys, yolo, "--mean", "0,0", "--std", "1,1")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "takes 3" in err


def test_a_graph_that_pools_its_whole_input_is_said_to_read_the_whole_tile(tmp_path, capsys):
    code, out, _ = _inspect(capsys, squeeze_excited(tiny_segmenter_onnx(tmp_path / "se.onnx")), "--task", "segmentation")
    assert code == 0 and "context: global (1 GlobalAveragePool)" in out and "--input-size H W" in out
    code, out, _ = _inspect(capsys, tiny_segmenter_onnx(tmp_path / "plain.onnx"), "--task", "segmentation")
    assert code == 0 and "context: local" in out
