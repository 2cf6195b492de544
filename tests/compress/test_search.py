"""The search: each constraint respected, infeasible goals refused with the best figures."""
import pytest

from edgekit.compress.search import LEVELS, Goal, Plan, PlanFigures, feasible_plans
from edgekit.errors import ConfigError

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
    with pytest.raises(ConfigError, match=r"best reachable 2.22x \(45.0 ms, prune50\+rank25\), smallest 12.0 MB"):
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

    assert any(p.embed for p in plans_for(3, "vit")) and not any(p.embed for p in plans_for(3, "fastvit"))
    assert not any(p.embed for p in plans_for(2, "vit"))
