"""Calibration bounded in one image's activations: past the budget, the tensors are calibrated in
groups (one pass of the images each) and the quantized model is the same; when one tensor alone
cannot fit, a one-line refusal with the estimate."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.images.image_set import CalibrationSet
from edgekit.convert.calibration_memory import calibrated_tensors, memory_budget, plan_calibration
from edgekit.convert.precision import PrecisionSpec, set_precision
from edgekit.errors import CalibrationError
from tests.convert.test_precision import PRE, SIZE, small_cnn_onnx, smooth_images

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
TENSOR = SIZE * SIZE * 8 * 4  # one 8-channel float32 activation of one image, bytes
CHUNK = 2  # images per pass: the calibrator holds CHUNK + 1 copies


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("calib-memory")
    return {"seg": small_cnn_onnx(root / "seg.onnx"),
            "calib": CalibrationSet(smooth_images(root / "imgs", 8), (SIZE, SIZE), PRE, samples=6)}


def quant_params(path) -> dict[str, np.ndarray]:
    """Scales and zero points of every QuantizeLinear / DequantizeLinear, by initializer name."""
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    names = {n for node in model.graph.node if node.op_type.endswith("QuantizeLinear") for n in node.input[1:]}
    return {n: inits[n] for n in sorted(names) if n in inits}


def test_estimate_is_the_sum_of_the_calibrated_tensors(setup):
    sizes = calibrated_tensors(setup["seg"], None)
    assert sizes["input"] == SIZE * SIZE * 3 * 4 and sizes["r1"] == TENSOR and sizes["logits"] == SIZE * SIZE * 4 * 4
    plan = plan_calibration(setup["seg"], None, "entropy", CHUNK, 2**40)
    assert not plan.split and plan.peak_bytes == sum(sizes.values()) * (CHUNK + 1)
    assert 0 < memory_budget() and memory_budget(3) == 3 * 2**20


@pytest.mark.parametrize("method", ["entropy", "percentile", "max"])
def test_split_calibration_gives_the_same_model(setup, tmp_path, method):
    held = CHUNK + 1 if method != "max" else 1  # max's reductions keep each tensor of one image alive, once
    budget_mb = 1.5 * TENSOR * held / 2**20  # one 8-channel tensor per pass, not two
    plan = plan_calibration(setup["seg"], None, method, CHUNK, int(budget_mb * 2**20))
    assert len(plan.groups) >= 4 and plan.peak_bytes > plan.budget_bytes
    whole = set_precision(setup["seg"], tmp_path / "whole.onnx",
                          PrecisionSpec("int8", calib_method=method, calib_chunk=CHUNK, calib_memory_mb=10_000), setup["calib"])
    split = set_precision(setup["seg"], tmp_path / "split.onnx",
                          PrecisionSpec("int8", calib_method=method, calib_chunk=CHUNK, calib_memory_mb=budget_mb), setup["calib"])
    assert whole.calib_groups == 1 and split.calib_groups == len(plan.groups)
    a, b = quant_params(whole.path), quant_params(split.path)
    assert a.keys() == b.keys() and len(a) >= 8
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_one_tensor_over_the_budget_is_refused_with_the_estimate(setup, tmp_path):
    budget_mb = 0.5 * TENSOR * (CHUNK + 1) / 2**20
    spec = PrecisionSpec("int8", calib_method="entropy", calib_chunk=CHUNK, calib_memory_mb=budget_mb)
    with pytest.raises(CalibrationError, match=r"needs \d+ MB for tensor .* over the \d+ MB budget") as info:
        set_precision(setup["seg"], tmp_path / "q.onnx", spec, setup["calib"])
    assert "\n" not in str(info.value) and "--calib-memory" in str(info.value)
    assert not (tmp_path / "q.onnx").exists()
    # max holds each tensor once, not CHUNK + 1 times: the same budget lets it run, in groups
    done = set_precision(setup["seg"], tmp_path / "m.onnx", PrecisionSpec("int8", calib_method="max", calib_chunk=CHUNK,
                                                                          calib_memory_mb=budget_mb), setup["calib"])
    assert done.calib_groups > 1


def test_quantize_command_refuses_in_one_line_with_exit_2(setup, tmp_path, capsys):
    from edgekit.cli.main import main

    out = tmp_path / "q.onnx"
    code = main(["quantize", str(setup["seg"]), "-o", str(out), "--precision", "int8", "--target", "cpu",
                 "--calib", str(setup["calib"].source), "--calib-samples", "4", "--calib-method", "entropy",
                 "--calib-memory", "0.01"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "over the 0 MB budget" in err and len(err.splitlines()) == 1 and not out.exists()
