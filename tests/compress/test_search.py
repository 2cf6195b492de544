"""The search: each constraint respected, infeasible goals refused with the best figures."""
import pytest

from edgekit.compress.search import LEVELS, Goal, Plan, PlanFigures, feasible_plans
from edgekit.errors import ConfigError, InfeasibleError

BASE = {"latency_ms": 100.0, "size_mb": 40.0}


def _measured():
    figures = [(Plan(0.25), 80.0, 30.0), (Plan(0.5), 55.0, 20.0), (Plan(0.5, 0.25), 45.0, 12.0)]
    return [PlanFigures(p, {"latency_ms": ms, "size_mb": mb, "macs": int(1e6 * mb)}) for p, ms, mb in figures]


@pytest.mark.parametrize("goal, names", [
    (Goal(speedup=1.5), ["prune50", "prune50+rank25"]),
    (Goal(max_latency_ms=60), ["prune50", "prune50+rank25"]),
    (Goal(max_size_mb=15), ["prune50+rank25"]),
    (Goal(speedup=1.2, max_size_mb=25), ["prune50", "prune50+rank25"]),
])
def test_each_constraint_is_respected_least_compressed_first(goal, names):
    assert [m.plan.name for m in feasible_plans(BASE, _measured(), goal, 2)] == names


def test_infeasible_goal_names_the_best_reachable_figures():
    with pytest.raises(InfeasibleError, match=r"best reachable 2.22x \(45.0 ms, prune50\+rank25\), smallest 12.0 MB"):
        feasible_plans(BASE, _measured(), Goal(speedup=3.0), 2)


def test_goal_needs_a_limit_and_levels_grow():
    with pytest.raises(ConfigError, match="--speedup"):
        Goal(max_drop=1.0)
    with pytest.raises(ConfigError):
        Goal(speedup=0.5)
    assert set(LEVELS[1]) < set(LEVELS[2]) < set(LEVELS[3])
    assert all(p.rank is None and not p.depth for p in LEVELS[1])
    assert any(p.depth for p in LEVELS[3]) and not any(p.depth for p in LEVELS[2])
    from edgekit.compress.search import plans_for

    for family in ("vit", "fastvit"):  # the adapters that narrow the residual stream get those plans
        assert any(p.embed for p in plans_for(1, family))
    for family in ("eva", "convnext", "cnn"):  # the others would measure the plain pruning again
        assert not any(p.embed for p in plans_for(3, family)) and len(plans_for(3, family)) < len(LEVELS[3])


def test_plans_are_timed_in_turns_with_the_original_and_cached_as_one_set(tmp_path, monkeypatch):
    import torch

    from edgekit.compress.search import measure_plans
    from edgekit.convert import onnx_check
    from edgekit.cache import MeasurementCache
    from tests.compress.compress_fixtures import TinyCnn

    calls = []

    def timing(paths, runs=5, threads=0, runtime="onnxruntime"):  # the exporters' choice times its two graphs too
        if all(p.name.startswith("plan") for p in paths):
            calls.append(([p.name for p in paths], runtime))
        return [10.0 * (len(paths) - i) for i in range(len(paths))]  # the original slowest, each plan faster

    monkeypatch.setattr(onnx_check, "time_onnx", timing)
    plans = (Plan(0.25), Plan(0.5))
    cache = MeasurementCache(tmp_path)
    base, measured = measure_plans(TinyCnn(), torch.randn(1, 3, 16, 16), plans, cache, {"source": "tiny"})
    assert calls == [(["plan0.onnx", "plan1.onnx", "plan2.onnx"], "onnxruntime")]  # all three timed together
    assert base["latency_ms"] == 30.0 and [m.figures["latency_ms"] for m in measured] == [20.0, 10.0]
    assert [m.plan for m in measured] == list(plans) and measured[1].figures["params"] < base["params"]
    again = measure_plans(TinyCnn(), torch.randn(1, 3, 16, 16), plans, MeasurementCache(tmp_path), {"source": "tiny"})
    assert len(calls) == 1 and again[0] == base  # a rerun measures nothing


def test_depth_plans_only_where_the_model_has_blocks_to_cut():
    from torch import nn

    from edgekit.compress.depth import can_drop
    from edgekit.compress.search import plans_for
    from tests.compress.compress_fixtures import tiny_vit

    assert can_drop(tiny_vit())  # timm's ViT: an nn.Sequential of blocks

    class Listed(nn.Module):  # a bare ModuleList: its owner may index it anywhere (Eva's owner is timm's, see depth.py)
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(4))

    assert not can_drop(Listed())
    assert any(p.depth for p in plans_for(3, "vit")) and not any(p.depth for p in plans_for(3, "vit", depth=False))
    assert len(plans_for(3, "vit", depth=False)) == len([p for p in LEVELS[3] if not p.depth])


def test_a_depth_plan_key_names_the_cut_version():
    from dataclasses import asdict

    from edgekit.compress.search import DEPTH_CUT_VERSION, Plan

    # figures cached before depth cuts reached Eva measured uncut models: a new version is a new key
    assert Plan(0.25, depth=0.25).key() == {**asdict(Plan(0.25, depth=0.25)), "depth_cut": DEPTH_CUT_VERSION}
    assert Plan(0.25).key() == asdict(Plan(0.25))  # plans without a cut keep their cached figures
