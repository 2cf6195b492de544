"""`edgekit optimize` from the command line: an artifact, or one line and no artifact."""
from __future__ import annotations

import json

import pytest

from edgekit.cli.main import main
from tests.optimize.optimize_fixtures import fragile_setup


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    return fragile_setup(tmp_path_factory.mktemp("cli-fragile"))


def _args(setup, out, *extra) -> list[str]:
    return ["optimize", str(setup["model"]), "-o", str(out), "--task", "segmentation", "--calib", str(setup["calib"]),
            "--val", str(setup["val"]), "--candidates", "int8", "--calib-methods", "max", "--calib-samples", "8",
            "--no-cache", *extra]


def test_optimize_writes_a_build_layout_artifact(setup, tmp_path, capsys):
    assert main(_args(setup, tmp_path / "out", "--max-drop", "1")) == 0, capsys.readouterr().err
    engine = json.loads((tmp_path / "out" / "manifest.json").read_text())["engine_file"]
    assert engine in ("model.ort.onnx", "model.xml")  # the cpu target keeps the runtime that timed faster
    for name in ("manifest.json", "model.onnx", engine, "report.json", "report.md"):
        assert (tmp_path / "out" / name).is_file()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["chosen"]["drop"] <= 1.0 and {c["name"] for c in report["candidates"]} >= {"fp32", "int8-max"}
    assert "chosen:" in capsys.readouterr().out


def test_infeasible_is_one_line_exit_1_and_no_artifact(setup, tmp_path, capsys):
    assert main(_args(setup, tmp_path / "out", "--max-latency", "0.000001ms")) == 1  # nothing held: a check failed
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "best reachable" in err and "fp32" in err
    assert not (tmp_path / "out").exists()


def test_missing_validation_set_names_the_option(setup, tmp_path, capsys):
    args = _args(setup, tmp_path / "out")
    args[args.index("--val") + 1] = str(tmp_path / "nowhere")
    assert main(args) == 2
    assert "--val" in capsys.readouterr().err


def test_estimated_latencies_print_their_rule_and_what_decided(setup, tmp_path, capsys):
    from edgekit.optimize.pipeline import estimate_rule

    args = _args(setup, tmp_path / "out", "--max-drop", "100", "--target", "jetson-orin-nx", "--no-search")
    args[args.index("--candidates") + 1] = "fp16"
    assert main(args) == 0, capsys.readouterr().err
    out = " ".join(capsys.readouterr().out.split())  # the table wraps its caption at spaces
    assert f"fp16: {estimate_rule('fp16')}" in out and f"fp32: {estimate_rule('fp32')}" in out
    assert "ms (estimated)" in out and "decided by: " in out and "lowest estimated latency" in out


def test_a_detector_onnx_is_optimized_without_task(tmp_path, capsys):
    """No --task: the YOLOv8 layout of the square finder decides detection (edgekit.convert.task), and
    the candidates are scored by mAP@0.5 against FP32's boxes."""
    from tests.detect.detect_fixtures import square_finder_onnx, squares_calib_val

    squares_calib_val(tmp_path, 4, seed=1)
    model = square_finder_onnx(tmp_path / "squares.onnx", size=64)
    args = ["optimize", str(model), "-o", str(tmp_path / "out"), "--calib", str(tmp_path / "calib"), "--val",
            str(tmp_path / "val"), "--candidates", "int8", "--calib-methods", "max", "--calib-samples", "4",
            "--no-cache", "--no-search", "--max-drop", "5", "--latency-runs", "1"]
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["task"] == "detection"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["metric"] == "mAP@0.5 against FP32's boxes" and report["chosen"]["drop"] <= 5.0
