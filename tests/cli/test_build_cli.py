"""`edgekit build` and the stage commands through the CLI root: tables, files, one-line errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import onnx
import pytest

from edgekit.cli.main import main
from edgekit.runtime.decode import FORMATS


def test_models_and_targets_list_the_data_folders(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "fastvit_sa12_fpn" in out and "trained" in out
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "jetson-orin-nx" in out and "10.3" in out


def test_build_prints_the_stage_table(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "a"
    start = time.perf_counter()
    assert main(["build", str(tiny_recipe), "-o", str(out), "--latency-runs", "1"]) == 0
    wall = time.perf_counter() - start
    text = capsys.readouterr().out
    for stage in ("reparam", "export", "simplify", "compile"):
        assert stage in text
    assert (out / "report.md").is_file() and (out / "manifest.json").is_file()
    # the last line's seconds are the command's wall time, which holds the stages' own seconds
    said = float(re.fullmatch(rf"built: {re.escape(str(out))} \((\d+) s\)", text.strip().splitlines()[-1]).group(1))
    stages = json.loads((out / "report.json").read_text())["seconds"]
    assert round(stages) - 1 <= said <= wall + 0.5


@pytest.mark.parametrize("args, message", [
    (["build", "nope_recipe", "-o", "OUT"], "unknown recipe 'nope_recipe'"),
    (["build", "fastvit_sa12_fpn", "-o", "OUT", "--target", "orin"], "choose one of: cpu"),
    (["build", "fastvit_sa12_fpn", "-o", "OUT", "--precision", "int8"], "needs a calibration set"),
    (["build", "timm:resnet51", "-o", "OUT"], "did you mean"),
    (["build", "fastvit_sa12_fpn", "-o", "OUT", "--input-size", "500"], "divisible"),
])
def test_build_errors_are_one_line_with_exit_2(tmp_path, capsys, args, message):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgekit: error:") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_export_and_simplify_commands(tiny_recipe, tmp_path, capsys):
    exported, simple = tmp_path / "e.onnx", tmp_path / "s.onnx"
    assert main(["export", str(tiny_recipe), "-o", str(exported), "--batch", "dynamic"]) == 0
    dims = onnx.load(str(exported)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 64, 64]
    assert main(["simplify", str(exported), "-o", str(simple)]) == 0
    assert "nodes" in capsys.readouterr().out and simple.is_file()


def test_corrupt_recipe_is_a_one_line_user_error(tmp_path):
    """Run as a program: a corrupt recipe YAML prints no traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    run = subprocess.run([sys.executable, "-m", "edgekit.cli.main", "build", str(bad), "-o", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "cannot read recipe" in run.stderr


def test_quantize_command_writes_qdq_and_verifies(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from tests.conftest import make_cpu_artifact

    art = make_cpu_artifact(tmp_path / "art", size=32)
    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(images / f"{i}.png")
    out = tmp_path / "q.onnx"
    code = main(["quantize", str(art / "model.onnx"), "-o", str(out), "--precision", "int8", "--calib", str(images),
                 "--calib-samples", "4", "--val", str(images), "--max-drop", "100"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Q/DQ pairs" in text and "verified on 6 images" in text
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(str(out)).graph.node}


# ---- the task: --task, else what the model says, else the output shapes (edgekit.convert.task) -----
def test_a_yolov8_layout_onnx_builds_as_a_detector_without_task(tmp_path, capsys):
    import json

    from tests.convert.test_task import graph_onnx

    model = graph_onnx(tmp_path / "yolo.onnx", "yolov8")
    assert main(["build", str(model), "-o", str(tmp_path / "out"), "--latency-runs", "0"]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["task"] == "detection"
    said = json.loads((tmp_path / "out" / "report.json").read_text())["details"]["task"]
    assert said == {"task": "detection", "layout": "yolov8",
                    "source": "output shapes: output0 (1, 5, 1024) is the yolov8 detection layout"}


def test_a_pytorch_model_s_task_is_read_from_the_output_build_deploys(tmp_path, capsys):
    """tests.convert.factories:tiny returns {"out": (1, 3, 32, 32), "aux": ...}: the deployed "out" decides."""
    import json

    args = ["build", "tests.convert.factories:tiny", "--input-size", "32", "-o", str(tmp_path / "out"),
            "--latency-runs", "0"]
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["task"] == "segmentation"
    assert main(["export", "tests.convert.factories:tiny", "--input-size", "32", "-o", str(tmp_path / "e.onnx")]) == 0
    assert [o.name for o in onnx.load(str(tmp_path / "e.onnx")).graph.output] == ["logits"]  # a segmenter's name


@pytest.mark.parametrize("task, message", [
    (None, "its outputs do not decide it: output logits (1, 4, 7, 9) is 4-D but its h x w is not the input's 32x32"),
    ("detection", "none of edgekit's detection decoders reads the outputs logits (1, 4, 7, 9): it reads "
                  f"{', '.join(FORMATS[:-1])} and {FORMATS[-1]}"),  # every decoder edgekit has, named
])
def test_a_task_the_shapes_do_not_decide_or_no_decoder_reads_is_one_line_and_nothing_written(tmp_path, capsys, task,
                                                                                              message):
    from tests.convert.test_task import graph_onnx

    model = graph_onnx(tmp_path / "odd.onnx", "odd")
    for command in (["build", str(model), "-o", str(tmp_path / "out"), "--latency-runs", "0"],
                    ["quantize", str(model), "-o", str(tmp_path / "out"), "--precision", "fp16"]):
        assert main(command + (["--task", task] if task else [])) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("edgekit: error:") and message in err and "\n" not in err
        assert "--task segmentation|classification|detection" in err if task is None else "docs/detection.md" in err
        assert not (tmp_path / "out").exists()
