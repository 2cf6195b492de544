"""What decided optimize's choice, in words: an estimated latency never beats a measured one silently."""
from __future__ import annotations

from edgekit.optimize.constraints import Constraints, Measurement
from edgekit.optimize.report import OptimizeReport, choose

RULE = "FP32's ONNX Runtime CPU latency on this machine / 2 (an assumed fp16 speed-up)"


def _measured(name: str, ms: float) -> Measurement:
    return Measurement(name, 0.1, ms, 1.0)


def _estimated(name: str, ms: float) -> Measurement:
    return Measurement(name, 0.1, ms, 1.0, latency_estimated=True, latency_rule=RULE)


def test_a_measured_candidate_wins_over_a_faster_estimate_and_says_so():
    chosen, why = choose([_estimated("fp16", 2.0), _measured("fp32", 5.0), _measured("int8-max", 4.0)])
    assert chosen.name == "int8-max"
    assert "measured" in why and "fp16" in why and "estimated" in why


def test_estimates_alone_decide_and_say_so():
    chosen, why = choose([_estimated("fp32", 4.0), _estimated("fp16", 2.0)])
    assert chosen.name == "fp16" and "estimated" in why


def test_measured_alone_decide_by_the_fastest():
    chosen, why = choose([_measured("fp32", 4.0), _measured("dynamic", 3.0)])
    assert chosen.name == "dynamic" and "measured" in why and "estimated" not in why


def test_markdown_and_table_carry_the_rule():
    fp16 = _estimated("fp16", 2.0)
    report = OptimizeReport("m.onnx", "jetson-orin-nx", Constraints(), "mIoU", 0.9, (_estimated("fp32", 4.0), fp16),
                            fp16, decided_by="fp16: lowest estimated latency")
    assert RULE in report.to_markdown() and "fp16: lowest estimated latency" in report.to_markdown()
    assert any(RULE in line for line in report.latency_legend())
    assert report.rows()[1][3] == "2.0*"
    assert report.to_dict()["decided_by"] == "fp16: lowest estimated latency"
