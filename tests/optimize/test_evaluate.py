"""optimize times its candidates in turns, through the one timing helper (edgekit.timing)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import edgekit.optimize.evaluate as evaluate


def _recording_sessions(monkeypatch, order: list) -> None:
    """Each model's session records its runs in ``order`` (ONNX Runtime's own timing is not under test)."""

    class Session:
        def __init__(self, path: Path, precision: str) -> None:
            self.name = f"{Path(path).stem}/{precision}"

        def input_specs(self):
            return [SimpleNamespace(name="x")]

        def infer(self, feed):
            order.append(self.name)
            return {"y": feed["x"]}

    @contextmanager
    def session(path, threads=0, precision="fp32"):
        yield Session(path, precision)

    monkeypatch.setattr(evaluate, "_session", session)


def test_candidates_are_timed_in_turns_after_one_warm_up_each(monkeypatch):
    order: list[str] = []
    _recording_sessions(monkeypatch, order)
    feed = np.zeros((1, 3, 4, 4), np.float32)
    ms = evaluate.measure_latencies([(Path("a.onnx"), "fp32"), (Path("b.onnx"), "int8"), (Path("c.onnx"), "fp32")],
                                    feed, runs=3)
    assert len(ms) == 3 and all(m >= 0 for m in ms)
    turn = ["a/fp32", "b/int8", "c/fp32"]
    assert order == turn + turn * 3  # warm-ups, then a, b, c, a, b, c, ...: never a, a, a, b, b, b


def test_a_bf16_candidate_among_onnx_runtime_ones_is_timed_in_turns_of_two(monkeypatch):
    """bf16 runs on OpenVINO, the rest on ONNX Runtime: each turn is two runs back to back, the
    second timed, so no figure carries the other runtime's threads still spinning."""
    order: list[str] = []
    _recording_sessions(monkeypatch, order)
    evaluate.measure_latencies([(Path("a.onnx"), "fp32"), (Path("b.onnx"), "bf16")], np.zeros((1, 3, 4, 4), np.float32),
                               runs=2)
    assert order == ["a/fp32", "b/bf16"] + ["a/fp32", "a/fp32", "b/bf16", "b/bf16"] * 2


def test_one_model_is_one_warm_up_and_the_counted_runs(monkeypatch):
    order: list[str] = []
    _recording_sessions(monkeypatch, order)
    evaluate.measure_latency(Path("m.onnx"), np.zeros((1, 3, 4, 4), np.float32), runs=4, precision="fp32")
    assert order == ["m/fp32"] * 5
