"""compress recovers the next plans when the first misses --max-drop, within a count and a time bound."""
import pytest

from edgekit.compress.pipeline import CompressConfig, attempt_in_turn, attempts_line
from edgekit.compress.search import Goal, Plan, PlanFigures
from edgekit.errors import ConfigError

BASE = {"latency_ms": 100.0}
FEASIBLE = [PlanFigures(Plan(p), {"latency_ms": ms}) for p, ms in ((0.5, 65.0), (0.625, 64.0), (0.75, 55.0))]


class Clock:
    """Minutes that pass only while a plan recovers."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _recover(drops, clock, minutes):
    calls = []

    def recover(candidate):
        calls.append(candidate.plan.name)
        clock.now += 60 * minutes[len(calls) - 1]
        drop = drops[candidate.plan.name]
        return {"metric": 0.7 - drop / 100, "drop": drop, "steps": 300}, candidate.plan.name

    return recover, calls


def test_the_next_plan_is_recovered_when_the_first_misses_and_each_attempt_is_said():
    clock, said = Clock(), []
    recover, calls = _recover({"prune50": 0.53, "prune62": 0.41, "prune75": 0.2}, clock, [4, 4, 4])
    tried, kept = attempt_in_turn(FEASIBLE, BASE, Goal(0.5, 1.5), recover, 3, 3600, said.append, clock)
    assert calls == ["prune50", "prune62"] and kept == "prune62"  # stops at the first that holds
    assert [(t["plan"], t["holds"], t["drop"]) for t in tried] == [("prune50", False, 0.53), ("prune62", True, 0.41)]
    assert tried[0]["speedup"] == pytest.approx(1.538) and tried[1]["seconds"] == 240
    assert said[0].startswith("attempt 1/3 prune50: 1.54x (65.0 ms), held-out 69.47 (-0.53 points), 300 steps, 4.0 min")
    assert said[0].endswith("misses --max-drop 0.5") and said[1].endswith("holds")


def test_attempts_stop_at_the_count_and_at_the_time_budget():
    drops = {"prune50": 0.9, "prune62": 0.8, "prune75": 0.7}
    clock = Clock()
    recover, calls = _recover(drops, clock, [4, 4, 4])
    tried, kept = attempt_in_turn(FEASIBLE, BASE, Goal(0.5, 1.5), recover, 2, None, lambda _m: None, clock)
    assert kept is None and calls == ["prune50", "prune62"]  # --max-candidates 2

    clock, said = Clock(), []
    recover, calls = _recover(drops, clock, [4, 7, 4])
    tried, kept = attempt_in_turn(FEASIBLE, BASE, Goal(0.5, 1.5), recover, 3, 12 * 60, said.append, clock)
    assert calls == ["prune50", "prune62"]  # 11 min spent + 7 for another > 12
    assert tried[-1]["plan"] == "prune75" and "11.0 min spent + 7.0 min a plan > 12 min" in tried[-1]["left_out"]
    assert said[-1].startswith("attempt 3/3 prune75 (1.82x) left out")
    line = attempts_line(tried, 3, CompressConfig(images=".", val="."))
    assert line.startswith("tried prune50 1.54x -0.90, prune62 1.56x -0.80 (2 of 3 plans meeting the goal")
    assert "prune75 left out" in line and "\n" not in line


def test_the_first_plan_is_tried_whatever_the_budget_and_bad_bounds_are_refused():
    clock = Clock()
    recover, calls = _recover({"prune50": 0.1}, clock, [30])
    tried, kept = attempt_in_turn(FEASIBLE, BASE, Goal(0.5, 1.5), recover, 3, 1.0, lambda _m: None, clock)
    assert calls == ["prune50"] and kept == "prune50"
    with pytest.raises(ConfigError, match="--max-candidates must be at least 1"):
        CompressConfig(images=".", val=".", max_candidates=0)
    with pytest.raises(ConfigError, match="--time-budget must be above 0"):
        CompressConfig(images=".", val=".", time_budget_min=0)
