"""The search on injected measurements whose answer is known."""
from __future__ import annotations

from edgekit.optimize.constraints import Constraints, Measurement
from edgekit.optimize.cost import NodeCost
from edgekit.convert.mixed_precision import Region
from edgekit.optimize.search import search

REGIONS = tuple(Region(f"r{i}", (f"n{i}a", f"n{i}b")) for i in range(6))
FRAGILE = "r3"


def _oracle(drops: dict[str, float], calls: list):
    """Drop = sum of the drops of the regions left quantized; latency falls 1 ms per quantized node."""
    def evaluate(float_nodes: frozenset, name: str) -> Measurement:
        calls.append(float_nodes)
        quantized = [r for r in REGIONS if not set(r.nodes) <= float_nodes]
        nodes_q = sum(n not in float_nodes for r in REGIONS for n in r.nodes)
        return Measurement(name, sum(drops[r.name] for r in quantized), 20.0 - nodes_q, 1.0,
                           float_nodes=tuple(sorted(float_nodes)))
    return evaluate


def test_fragile_region_is_the_one_kept_in_float():
    drops = {r.name: 0.05 for r in REGIONS} | {FRAGILE: 30.0}
    calls: list = []
    result = search(REGIONS, drops, {}, _oracle(drops, calls), Constraints(max_drop=0.5))
    assert result.order[0] == FRAGILE
    assert set(result.best.float_nodes) == {"n3a", "n3b"}
    assert result.best.drop <= 0.5
    assert all("sensitive" in d.reason and d.region == FRAGILE for d in result.decisions)
    assert len(calls) <= 4  # bisection, not one measurement per region


def test_node_slower_quantized_stays_float_even_when_harmless():
    drops = {r.name: 0.0 for r in REGIONS}
    costs = {n: NodeCost(1.0, 0.5) for r in REGIONS for n in r.nodes} | {"n1b": NodeCost(0.2, 0.6)}
    result = search(REGIONS, drops, costs, _oracle(drops, []), Constraints(max_drop=0.5))
    assert result.best.float_nodes == ("n1b",)
    (decision,) = result.decisions
    assert decision.node == "n1b" and "slower quantized" in decision.reason


def test_more_budget_gives_back_less_precision():
    drops = {"r0": 0.1, "r1": 0.2, "r2": 0.4, "r3": 0.8, "r4": 1.6, "r5": 3.2}
    tight = search(REGIONS, drops, {}, _oracle(drops, []), Constraints(max_drop=0.5))
    loose = search(REGIONS, drops, {}, _oracle(drops, []), Constraints(max_drop=2.0))
    assert len(loose.best.float_nodes) < len(tight.best.float_nodes)
    assert tight.best.drop <= 0.5 and loose.best.drop <= 2.0
    assert loose.best.latency_ms < tight.best.latency_ms


def test_latency_limit_no_mixture_holds():
    drops = {r.name: 0.0 for r in REGIONS}
    result = search(REGIONS, drops, {}, _oracle(drops, []), Constraints(max_drop=0.5, max_latency_ms=1.0))
    assert result.best is None and result.steps
