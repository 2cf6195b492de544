"""Sensitivity per region: the accuracy a region costs when it alone is lowered to int8.

Each probe is a mixture of the calibrated int8 graph in which every quantized node outside the
region stays float, scored on a few validation images against the FP32 model's own labels
(agreement is steadier than ground truth on a few images, and only the ranking matters here).
"""
from __future__ import annotations

__all__ = ["region_sensitivity"]

from typing import Callable

from edgekit.convert.mixed_precision import Region

Score = Callable[[frozenset, str], float]


def region_sensitivity(regions: tuple[Region, ...], quantized: set[str], score: Score,
                       say: Callable[[str], None] | None = None) -> dict[str, float]:
    """Points lost with each region lowered alone, by region name.

    Args:
        regions: the regions to probe.
        quantized: every node the int8 graph quantizes.
        score: points lost by the mixture whose float nodes are given (and its name).
        say: progress messages.
    """
    say = say or (lambda _m: None)
    found = {}
    for i, region in enumerate(regions, 1):
        say(f"sensitivity {i}/{len(regions)}: {region.name}")
        found[region.name] = score(frozenset(quantized - set(region.nodes)), f"only {region.name}")
    return found
