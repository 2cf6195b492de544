"""optimize's int8 placed for OpenVINO: a candidate where OpenVINO is installed, measured on it and
written as the int8 graph the build places for OpenVINO."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.optimize import Constraints, OptimizeConfig, optimize
from edgekit.optimize.candidates import candidate_specs
from edgekit.targets import load_target
from tests.optimize.optimize_fixtures import fragile_setup

pytest.importorskip("openvino")


def test_int8_placed_for_openvino_is_a_cpu_candidate_run_on_openvino():
    specs = {s.name: s for s in candidate_specs(load_target("cpu"), ("int8",), None)}
    assert list(specs) == ["fp32", "int8-max", "int8-entropy", "int8-percentile", "int8-max-all", "int8-openvino"]
    assert specs["int8-openvino"].precision == "openvino" and specs["int8-max"].precision == "fp32"
    assert "int8-openvino" not in [s.name for s in candidate_specs(load_target("jetson-orin-nx"), ("int8",), None)]


def test_an_openvino_int8_candidate_is_measured_on_openvino_and_written_as_int8(tmp_path, monkeypatch):
    import onnx
    from onnx import numpy_helper

    import edgekit.optimize.evaluate as evaluate
    from edgekit.artifact.folder import load_artifact

    (tmp_path / "fragile").mkdir()
    setup = fragile_setup(tmp_path / "fragile")
    asked = []
    accuracy = evaluate.Evaluator.accuracy

    def recorded_accuracy(self, path, precision="fp32"):
        asked.append(("accuracy", precision))
        return accuracy(self, path, precision)

    def latencies(models, feed, runs=5, threads=0):  # OpenVINO's made the fastest: the choice and write are under test
        asked.extend(("latency", precision) for _, precision in models)
        return [1.0 if precision == "openvino" else 10.0 for _, precision in models]

    monkeypatch.setattr(evaluate, "measure_latencies", latencies)
    monkeypatch.setattr(evaluate.Evaluator, "accuracy", recorded_accuracy)
    config = OptimizeConfig(task="segmentation", calib=setup["calib"], val=setup["val"], candidates=("int8",),
                            calib_methods=("max",), calib_samples=8, cache=None, search=False)
    report = optimize(str(setup["model"]), tmp_path / "out", Constraints(max_drop=100.0), config).report
    assert report.chosen.name == "int8-openvino"
    assert ("accuracy", "openvino") in asked and ("latency", "openvino") in asked and ("accuracy", "fp32") in asked
    out = tmp_path / "out"
    assert load_artifact(out).manifest.precision == "int8"
    graph = onnx.load(str(out / "model.onnx")).graph
    zero_points = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    quantize = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert quantize and all(zero_points[n.input[2]].dtype == np.int8 and not zero_points[n.input[2]].any()
                            for n in quantize)  # OpenVINO's placement: symmetric int8 activations
