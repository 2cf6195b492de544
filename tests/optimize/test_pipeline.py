"""optimize end to end on the fragile segmenter: sensitivity, latency awareness, cache, infeasible.

ONNX Runtime runs the tiny graphs faster in float (int8 kernels cost more than they save at
16x16), so latency is injected where a test needs quantization to pay: 10 ms minus 2 ms per
quantized conv1 / conv2, plus 1 ms when conv3 is quantized (its int8 form is slower).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import ConfigError, InfeasibleError
from edgekit.optimize import Constraints, OptimizeConfig, optimize
from edgekit.optimize.cost import NodeCost
from edgekit.convert.mixed_precision import quantized_nodes
from edgekit.artifact.folder import load_artifact
from tests.optimize.optimize_fixtures import fragile_setup

GAIN = {"conv1": 2.0, "conv2": 2.0, "conv3": -1.0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    return fragile_setup(tmp_path_factory.mktemp("fragile"))


@pytest.fixture
def counted(monkeypatch) -> dict:
    """Injected latency and per-node costs; counts every measurement made."""
    import edgekit.optimize.evaluate as evaluate
    import edgekit.optimize.pipeline as pipeline

    calls = {"latency": 0, "accuracy": 0, "costs": 0, "turns": []}
    accuracy = evaluate.Evaluator.accuracy

    def latency(path, feed, runs=5, threads=0, precision="fp32"):
        calls["latency"] += 1
        return 10.0 - sum(GAIN[n] for n in quantized_nodes(path))

    def costs(fp32, qdq, nodes, feed, runs=5, threads=0):
        calls["costs"] += 1
        return {n: NodeCost(3.0, 3.0 - GAIN[n]) for n in nodes}

    def counted_accuracy(self, path, precision="fp32"):
        calls["accuracy"] += 1
        return accuracy(self, path, precision)

    def latencies(models, feed, runs=5, threads=0):  # whole models in turns, a mixture alone: the same injection
        calls["turns"].append([Path(p).parent.name for p, _ in models])
        return [latency(p, feed, runs, threads, pr) for p, pr in models]

    monkeypatch.setattr(evaluate, "measure_latencies", latencies)
    monkeypatch.setattr(pipeline, "profiled_node_costs", costs)
    monkeypatch.setattr(evaluate.Evaluator, "accuracy", counted_accuracy)
    return calls


def _config(setup: dict, cache: Path | None) -> OptimizeConfig:
    return OptimizeConfig(task="segmentation", calib=setup["calib"], val=setup["val"], calib_methods=("max",),
                          candidates=("int8",), calib_samples=8, cache=cache)


def test_fragile_conv_and_slow_conv_stay_float(setup, counted, tmp_path):
    result = optimize(str(setup["model"]), tmp_path / "out", Constraints(max_drop=40.0), _config(setup, tmp_path / "cache"))
    report = result.report
    whole = [c.name for c in report.candidates]
    assert len(whole) >= 2 and len(counted["turns"][0]) == len(whole)  # FP32 and the int8 graphs timed together, in turns
    assert report.chosen.name.startswith("mixed")
    assert set(report.chosen.float_nodes) == {"conv2", "conv3"}
    assert max(report.regions.items(), key=lambda kv: kv[1]["sensitivity"])[0] == "net.b"
    reasons = {d["node"]: d["reason"] for d in report.search["decisions"]}
    assert reasons["conv2"].startswith("sensitive") and reasons["conv3"].startswith("slower quantized")
    artifact = load_artifact(tmp_path / "out")
    assert artifact.manifest.precision == "int8" and artifact.manifest.engine_file
    assert quantized_nodes(artifact.model_path) == {"conv1"}
    assert (tmp_path / "out" / "report.md").read_text().count("conv2") >= 1


def test_rerun_with_another_budget_measures_nothing(setup, counted, tmp_path):
    config = _config(setup, tmp_path / "cache")
    optimize(str(setup["model"]), tmp_path / "a", Constraints(max_drop=40.0), config)
    assert counted["accuracy"] > 0 and counted["latency"] > 0 and counted["costs"] == 1
    before = dict(counted)
    second = optimize(str(setup["model"]), tmp_path / "b", Constraints(max_drop=100.0), config)
    assert counted == before
    assert second.report.cache["measured"] == 0 and second.report.cache["hits"] > 0
    assert second.report.chosen.latency_ms <= 8.0  # a looser budget quantizes the fragile conv too


def test_a_candidate_new_to_the_cache_is_timed_in_turns_with_the_stored_ones(setup, counted, tmp_path):
    from dataclasses import replace

    config = _config(setup, tmp_path / "cache")
    first = optimize(str(setup["model"]), tmp_path / "a", Constraints(max_drop=40.0), replace(config, candidates=()))
    assert [c.name for c in first.report.candidates] == ["fp32"]
    counted["turns"].clear()
    optimize(str(setup["model"]), tmp_path / "b", Constraints(max_drop=40.0), config)
    # the FP32 build's graph (stored by the first run, in its folder "artifact") timed again beside the new
    assert "artifact" in counted["turns"][0] and len(counted["turns"][0]) >= 2


def test_infeasible_constraints_write_nothing(setup, counted, tmp_path):
    with pytest.raises(InfeasibleError) as info:
        optimize(str(setup["model"]), tmp_path / "out", Constraints(max_drop=1.0, max_latency_ms=1.0), _config(setup, None))
    message = str(info.value)
    assert "\n" not in message and "best reachable" in message and "fp32 10.0 ms" in message
    assert not (tmp_path / "out").exists()


def test_without_masks_the_metric_is_agreement(setup, counted, tmp_path):
    import shutil

    val = tmp_path / "val"
    shutil.copytree(setup["val"], val, ignore=shutil.ignore_patterns("masks"))
    config = OptimizeConfig(task="segmentation", val=val, candidates=(), cache=None)
    result = optimize(str(setup["model"]), tmp_path / "out", Constraints(), config)
    assert result.report.chosen.name == "fp32"
    assert "agreement" in result.report.metric_name and any("no ground-truth" in n for n in result.report.notes)


def test_openvino_target_is_refused_in_one_line(setup, tmp_path):
    from dataclasses import replace

    with pytest.raises(ConfigError, match="ONNX Runtime's per-node profile") as info:
        optimize(str(setup["model"]), tmp_path / "out", Constraints(max_drop=1.0),
                 replace(_config(setup, None), target="cpu-openvino"))
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_a_detector_is_optimized_against_its_fp32_boxes(tmp_path):
    """The square finder: every candidate scored by COCO mAP@0.5 against FP32's boxes."""
    from tests.detect.detect_fixtures import square_finder_onnx, squares_calib_val

    squares_calib_val(tmp_path, 6, seed=0)
    model = square_finder_onnx(tmp_path / "squares.onnx", size=64)
    config = OptimizeConfig(task="detection", calib=tmp_path / "calib", val=tmp_path / "val", calib_methods=("max",),
                            candidates=("int8",), calib_samples=6, input_size=(64, 64))
    result = optimize(str(model), tmp_path / "out", Constraints(max_drop=5.0), config)
    report = result.report
    assert report.metric_name == "mAP@0.5 against FP32's boxes"
    fp32 = next(c for c in report.candidates if c.name == "fp32")
    assert fp32.metric == 1.0 and fp32.drop == 0.0
    int8 = [c for c in report.candidates if c.name.startswith("int8")]
    assert int8 and all(0.0 <= c.metric <= 1.0 and c.drop == pytest.approx(100 * (1 - c.metric)) for c in int8)
    assert report.chosen.drop <= 5.0 and load_artifact(tmp_path / "out").manifest.task == "detection"


def test_tensorrt_latencies_are_estimates_that_print_their_rule(setup, counted, tmp_path):
    """No TensorRT here: every latency is an ONNX Runtime CPU figure turned into an estimate, flagged
    with the rule that made it, in report.json and report.md, and the report says an estimate decided."""
    import json
    from dataclasses import replace

    config = replace(_config(setup, None), target="jetson-orin-nx", candidates=("fp16", "int8"), search=False)
    report = optimize(str(setup["model"]), tmp_path / "out", Constraints(max_drop=100.0), config).report
    by = {c.name: c for c in report.candidates}
    assert by["fp16"].latency_ms == by["fp32"].latency_ms / 2  # the rule, as applied
    assert all(c.latency_estimated and c.latency_rule for c in report.candidates)
    assert "/ 2" in by["fp16"].latency_rule and "ONNX Runtime CPU" in by["fp16"].latency_rule
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    rules = {c["name"]: c["latency_rule"] for c in data["candidates"] if c["latency_estimated"]}
    assert rules == {name: c.latency_rule for name, c in by.items()}
    assert "estimated" in data["decided_by"] and report.chosen.name in data["decided_by"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert all(c.latency_rule in md for c in report.candidates) and data["decided_by"] in md


def test_a_cpu_target_measures_every_latency(setup, counted, tmp_path):
    config = OptimizeConfig(task="segmentation", val=setup["val"], candidates=("fp16",), cache=None, search=False)
    report = optimize(str(setup["model"]), tmp_path / "out", Constraints(max_drop=100.0), config).report
    assert not any(c.latency_estimated or c.latency_rule for c in report.candidates)
    assert "measured" in report.decided_by and "estimated" not in report.decided_by
