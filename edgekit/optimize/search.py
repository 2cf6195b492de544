"""The search: start from the fastest mixture, give precision back to the most sensitive regions.

1. Latency first: a node whose quantized form is not faster on the target (its int8 cost, with
   the conversions it needs, is at least its float cost) stays float whatever the accuracy.
2. The rest starts quantized, the fastest configuration. While it loses more than the budget,
   regions go back to float in order of sensitivity (the accuracy each costs when lowered alone),
   the most sensitive first. The number of regions to give back is found by bisection over that
   order (accuracy improves as precision is given back), so n regions cost about log2(n)
   measurements of whole mixtures.
3. The fastest measured mixture that holds every constraint wins.

Pure: measuring is the caller's ``evaluate``, so tests inject known answers.
"""
from __future__ import annotations

__all__ = ["FloatDecision", "SearchResult", "search"]

from dataclasses import asdict, dataclass
from typing import Callable

from edgekit.optimize.constraints import Constraints, Measurement
from edgekit.optimize.cost import NodeCost
from edgekit.convert.mixed_precision import Region

Evaluate = Callable[[frozenset, str], Measurement]


@dataclass(frozen=True)
class FloatDecision:
    """A quantizable node left in float, and why."""

    node: str
    region: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    """Every mixture measured, and the fastest that holds the constraints (None: none does).

    Attributes:
        order: region names, most sensitive first (the order precision is given back in).
        steps: measured mixtures; ``steps[i].float_nodes`` says what stayed float.
        best: the fastest step that holds the constraints.
        decisions: the float nodes of ``best`` with their reasons.
    """

    order: tuple[str, ...]
    steps: tuple[Measurement, ...]
    best: Measurement | None
    decisions: tuple[FloatDecision, ...]

    def to_dict(self) -> dict:
        return {"order": list(self.order), "steps": [s.to_dict() for s in self.steps],
                "best": self.best.to_dict() if self.best else None, "decisions": [d.to_dict() for d in self.decisions]}


def _slow_nodes(regions: tuple[Region, ...], costs: dict[str, NodeCost]) -> set[str]:
    return {n for r in regions for n in r.nodes if n in costs and costs[n].gain_ms <= 0}


def search(regions: tuple[Region, ...], sensitivity: dict[str, float], costs: dict[str, NodeCost],
           evaluate: Evaluate, constraints: Constraints, say: Callable[[str], None] | None = None) -> SearchResult:
    """Find the fastest mixture within ``constraints``.

    Args:
        regions: quantizable regions of the model.
        sensitivity: points lost with each region (by name) lowered alone.
        costs: per-node float / int8 cost on the target; nodes absent are assumed faster quantized.
        evaluate: measures the mixture whose float nodes are given (and names it).
        constraints: the budget.
        say: progress messages.
    """
    say = say or (lambda _m: None)
    slow = _slow_nodes(regions, costs)
    lowerable = [r for r in regions if any(n not in slow for n in r.nodes)]
    gain = {r.name: sum(costs[n].gain_ms for n in r.nodes if n in costs and n not in slow) for r in lowerable}
    order = sorted(lowerable, key=lambda r: (-sensitivity.get(r.name, 0.0), gain[r.name]))
    steps: dict[int, Measurement] = {}

    def run(k: int) -> Measurement:
        if k not in steps:
            float_nodes = frozenset(slow | {n for r in order[:k] for n in r.nodes})
            say(f"search: {k} of {len(order)} regions back in float")
            steps[k] = evaluate(float_nodes, f"mixed-{k}" if k else "mixed-fastest")
        return steps[k]

    if order and run(0).drop > constraints.max_drop:
        low, high = 0, len(order)  # run(high) is all float: FP32 accuracy, not measured again
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if run(mid).drop <= constraints.max_drop else (mid, high)
    measured = [steps[k] for k in sorted(steps)]
    feasible = [m for m in measured if constraints.holds(m)]
    best = min(feasible, key=lambda m: m.latency_ms) if feasible else None
    return SearchResult(tuple(r.name for r in order), tuple(measured), best,
                        _decisions(best, regions, order, slow, sensitivity, costs))


def _decisions(best: Measurement | None, regions, order, slow: set[str], sensitivity: dict[str, float],
               costs: dict[str, NodeCost]) -> tuple[FloatDecision, ...]:
    if best is None:
        return ()
    region_of = {n: r.name for r in regions for n in r.nodes}
    rank = {r.name: i + 1 for i, r in enumerate(order)}
    out = []
    for node in best.float_nodes:
        region = region_of.get(node, "?")
        if node in slow:
            c = costs[node]
            how = "measured" if c.measured else "estimated"
            why = f"slower quantized ({c.int8_ms:.3f} ms int8 vs {c.fp32_ms:.3f} ms float, {how})"
        else:
            why = (f"sensitive: lowering its region alone costs {sensitivity.get(region, 0.0):.2f} points "
                   f"(rank {rank.get(region, '?')} of {len(order)})")
        out.append(FloatDecision(node, region, why))
    return tuple(sorted(out, key=lambda d: (d.region, d.node)))
