"""bf16 among optimize's candidates: measured on OpenVINO computing in bfloat16, written as a bf16 artifact."""
from __future__ import annotations

import pytest

from edgekit.optimize import Constraints, OptimizeConfig, optimize
from edgekit.optimize.candidates import bf16_here, candidate_specs
from edgekit import machine
from edgekit.targets import load_target
from tests.optimize.optimize_fixtures import fragile_setup

pytest.importorskip("openvino")
needs_bf16 = pytest.mark.skipif(not machine.cpu_bf16(), reason="this CPU has neither AVX-512 BF16 nor AMX")


def test_bf16_is_a_candidate_where_the_cpu_computes_it(monkeypatch):
    names = lambda target: [s.name for s in candidate_specs(load_target(target), ("fp16", "bf16"), None)]  # noqa: E731
    monkeypatch.setattr(machine, "cpu_bf16", lambda: ("avx512_bf16",))
    assert names("cpu") == ["fp32", "fp16", "bf16"] and bf16_here() == ""
    assert names("jetson-orin-nx") == ["fp32", "fp16"]
    monkeypatch.setattr(machine, "cpu_bf16", lambda: ())
    assert names("cpu") == ["fp32", "fp16"] and "neither AVX-512 BF16 nor AMX" in bf16_here()


@needs_bf16
def test_a_bf16_candidate_is_measured_on_openvino_and_written_as_bf16(tmp_path, monkeypatch):
    import edgekit.optimize.evaluate as evaluate
    from edgekit.artifact.folder import load_artifact

    (tmp_path / "fragile").mkdir()
    setup = fragile_setup(tmp_path / "fragile")
    asked = []
    accuracy = evaluate.Evaluator.accuracy

    def latency(path, feed, runs=5, threads=0, precision="fp32"):  # bf16 made the fastest: the write is under test
        asked.append(("latency", precision))
        return 1.0 if precision == "bf16" else 10.0

    def recorded_accuracy(self, path, precision="fp32"):
        asked.append(("accuracy", precision))
        return accuracy(self, path, precision)

    monkeypatch.setattr(evaluate, "measure_latencies",
                        lambda models, feed, runs=5, threads=0: [latency(p, feed, runs, threads, pr) for p, pr in models])
    monkeypatch.setattr(evaluate.Evaluator, "accuracy", recorded_accuracy)
    config = OptimizeConfig(task="segmentation", val=setup["val"], candidates=("bf16",), cache=None, search=False)
    report = optimize(str(setup["model"]), tmp_path / "out", Constraints(max_drop=100.0), config).report
    assert [c.name for c in report.candidates] == ["fp32", "bf16"] and report.chosen.name == "bf16"
    assert ("latency", "bf16") in asked and ("accuracy", "bf16") in asked and ("latency", "fp32") in asked
    assert any("bf16: OpenVINO" in n for n in report.notes)
    m = load_artifact(tmp_path / "out").manifest
    assert (m.precision, m.backend, m.engine_file) == ("bf16", "openvino", "model.xml")
    assert m.session["openvino"]["precision_hint"] == "bf16" and m.session["runtime_choice"]["by"] == "pinned"
