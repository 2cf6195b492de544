"""One rule for a model's task: --task, else what the model says, else the output shapes, else a
one-line error asking for --task; a detector no decoder reads is a one-line error naming the layouts."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from edgekit.convert.contract import ContractWarning, contract_from_onnx
from edgekit.convert.task import TASKS, resolve_task, task_from_onnx
from edgekit.runtime.decode import FORMATS
from edgekit.errors import ConfigError
from tests.convert.test_contract import ULTRALYTICS_META, with_metadata

ROOT = Path(__file__).resolve().parents[2]


def graph_onnx(path: Path, output: str, size: int = 32) -> Path:
    """A tiny ONNX graph on a (1, 3, size, size) input whose one output ``output`` depends on it:

    ``scores`` (1, 10); ``mask`` (1, 4, size, size); ``quarter`` (1, 4, size/4, size/4);
    ``odd`` (1, 4, 7, 9); ``labels`` (1, size, size); ``yolov8`` (1, 5, size*size) boxes + 1 class;
    ``two`` two outputs, (1, 10) and (1, 4, size, size).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes, outs = [], [], []

    def weight(name, shape):
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name))
        return name

    def conv(out, channels, kernel=(1, 1), stride=1):
        nodes.append(helper.make_node("Conv", ["x", weight(f"w_{out}", (channels, 3, *kernel))], [out],
                                      kernel_shape=list(kernel), strides=[stride, stride]))

    def scores(out):
        nodes.append(helper.make_node("GlobalAveragePool", ["x"], ["pooled"]))
        nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"]))
        nodes.append(helper.make_node("MatMul", ["flat", weight("w_fc", (3, 10))], [out]))
        outs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 10]))

    if output in ("scores", "two"):
        scores("scores")
    if output in ("mask", "two"):
        conv("logits", 4)
        outs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, size, size]))
    if output == "quarter":
        conv("logits", 4, (4, 4), 4)
        outs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, size // 4, size // 4]))
    if output == "odd":
        conv("logits", 4, (size - 6, size - 8))
        outs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 7, 9]))
    if output == "labels":
        nodes.append(helper.make_node("ReduceMax", ["x"], ["labels"], keepdims=0, axes=[1]))
        outs.append(helper.make_tensor_value_info("labels", TensorProto.FLOAT, [1, size, size]))
    if output == "yolov8":
        conv("head", 5)
        shape = numpy_helper.from_array(np.array([1, 5, size * size], np.int64), "shape")
        inits.append(shape)
        nodes.append(helper.make_node("Reshape", ["head", "shape"], ["output0"]))
        outs.append(helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, size * size]))
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])
    model = helper.make_model(helper.make_graph(nodes, output, [inp], outs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _decide(path: Path, declared: str | None = None):
    return task_from_onnx(path, declared)


# ---- the shapes decide ------------------------------------------------------------------------------
@pytest.mark.parametrize("output, task, basis", [
    ("scores", "classification", "scores (1, 10) is (N, K) class scores"),
    ("mask", "segmentation", "logits (1, 4, 32, 32) is (N, C, h, w) at the input's size"),
    ("quarter", "segmentation", "at 1/4 of the input's size"),
    ("yolov8", "detection", "output0 (1, 5, 1024) is the yolov8 detection layout"),
])
def test_the_output_shapes_decide_the_task_when_nothing_says_it(tmp_path, output, task, basis):
    decision = _decide(graph_onnx(tmp_path / f"{output}.onnx", output))
    assert decision.task == task and decision.source.startswith("output shapes: ") and basis in decision.source
    assert decision.layout == ("yolov8" if task == "detection" else None)


@pytest.mark.parametrize("output, why", [
    ("odd", "(1, 4, 7, 9) is 4-D but its h x w is not the input's 32x32 divided by a stride of 1..32"),
    ("labels", "labels (1, 32, 32) is a label map (N, H, W)"),
    ("two", "it has 2 outputs (scores (1, 10), logits (1, 4, 32, 32)) and no detection layout reads them"),
])
def test_shapes_that_do_not_decide_ask_for_the_task_in_one_line_saying_why(tmp_path, output, why):
    with pytest.raises(ConfigError) as caught:
        _decide(graph_onnx(tmp_path / f"{output}.onnx", output))
    message = str(caught.value)
    assert why in message and "--task segmentation|classification|detection" in message and "\n" not in message


def test_a_task_the_model_names_but_edgekit_does_not_build_is_said_in_the_error(tmp_path):
    path = with_metadata(graph_onnx(tmp_path / "pose.onnx", "odd"), ULTRALYTICS_META | {"task": "pose"})
    with pytest.raises(ConfigError, match="says task 'pose': pose keypoints, which edgekit does not build.*--task"):
        _decide(path)


# ---- what the model says, and the option over it ---------------------------------------------------
def test_what_the_model_says_wins_over_the_shapes(tmp_path):
    path = with_metadata(graph_onnx(tmp_path / "m.onnx", "mask"), {"task": "classification"})
    decision = _decide(path)
    assert (decision.task, decision.source) == ("classification", "ONNX metadata 'task'")


def test_the_option_wins_over_the_model_with_one_warning_naming_both(tmp_path):
    path = with_metadata(graph_onnx(tmp_path / "m.onnx", "yolov8"), ULTRALYTICS_META)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decision = _decide(path, "classification")
    said = [str(w.message) for w in caught if issubclass(w.category, ContractWarning)]
    assert (decision.task, decision.source) == ("classification", "--task")
    assert said == ["--task classification overrides task detection from ONNX metadata (Ultralytics): the option wins"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _decide(path, "detection").layout == "yolov8"  # the option agrees: no warning


def test_a_manifest_beside_the_file_says_the_task(tmp_path):
    from tests.conftest import make_cpu_artifact

    folder = make_cpu_artifact(tmp_path / "artifact")  # a segmenter's manifest
    decision = task_from_onnx(folder / "model.onnx", None)
    assert (decision.task, decision.source) == ("segmentation", "manifest.json beside model.onnx")


def test_an_unknown_declared_task_names_the_choices():
    with pytest.raises(ConfigError, match="choose one of segmentation, classification, detection"):
        resolve_task("pose", outputs=[("o", (1, 10))])
    assert TASKS == ("segmentation", "classification", "detection")


# ---- a detector no decoder reads -------------------------------------------------------------------
@pytest.mark.parametrize("declared, meta, source", [
    ("detection", {}, "--task"),
    (None, ULTRALYTICS_META, "ONNX metadata (Ultralytics)"),
])
def test_a_detector_no_decoder_reads_names_the_layouts_and_where_to_add_one(tmp_path, declared, meta, source):
    path = with_metadata(graph_onnx(tmp_path / "odd.onnx", "odd"), meta)
    with pytest.raises(ConfigError) as caught:
        _decide(path, declared)
    message = str(caught.value)
    assert f"the task is detection ({source})" in message and "logits (1, 4, 7, 9)" in message
    assert all(f in message for f in FORMATS) and "docs/detection.md, 'Adding a decoder'" in message
    assert "\n" not in message


def test_the_documented_place_to_add_a_decoder_exists_and_lists_every_layout():
    text = (ROOT / "docs" / "detection.md").read_text()
    assert "## Adding a decoder" in text
    assert all(f"| `{f}` |" in text for f in FORMATS)  # the table edgekit's error points to


def test_outputs_not_known_skip_the_layout_check_but_shapes_cannot_decide():
    assert resolve_task("detection", outputs=None).layout is None
    with pytest.raises(ConfigError, match="its outputs are not known"):
        resolve_task(None, outputs=None)


def test_an_onnx_contract_s_outputs_are_what_the_rule_reads(tmp_path):
    contract = contract_from_onnx(graph_onnx(tmp_path / "q.onnx", "quarter"))
    decision = resolve_task(None, outputs=contract.outputs, input_hw=(32, 32))
    assert decision.task == "segmentation"
    with pytest.raises(ConfigError, match="not the input's 30x30"):
        resolve_task(None, outputs=contract.outputs, input_hw=(30, 30))


# ---- detection layouts only the values tell apart --------------------------------------------------
@pytest.mark.parametrize("pixels, layout", [(False, "yolox"), (True, "yolov5")])
def test_anchor_free_rows_are_decided_by_the_probe_of_the_model_s_outputs(tmp_path, pixels, layout):
    from edgekit.convert.task import outputs_probe
    from tests.detect.detect_fixtures import constant_onnx
    from tests.runtime.test_decode import _anchor_free

    path = constant_onnx(tmp_path / "head.onnx", _anchor_free(pixels))
    outputs = contract_from_onnx(path).outputs
    decision = resolve_task(None, outputs=outputs, input_hw=(32, 32), probe=outputs_probe(path))
    assert decision.task == "detection" and decision.layout == layout
    assert resolve_task("detection", outputs=outputs, input_hw=(32, 32), probe=outputs_probe(path)).layout == layout
    assert resolve_task(None, outputs=outputs, input_hw=(32, 32)).layout == "yolox or yolov5"  # no probe: both


def test_the_probe_runs_only_where_the_shapes_fit_two_layouts(tmp_path):
    def probe():
        raise AssertionError("the shapes decide: nothing to run")

    path = graph_onnx(tmp_path / "v8.onnx", "yolov8")
    assert resolve_task(None, outputs=contract_from_onnx(path).outputs, input_hw=(32, 32), probe=probe).layout == "yolov8"
