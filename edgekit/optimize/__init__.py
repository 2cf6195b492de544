"""`edgekit optimize`: the fastest artifact that holds accuracy, latency and size constraints.

Library: ``optimize(source, out, Constraints(...), OptimizeConfig(...)) -> OptimizeResult``.
The search itself (``search``) is pure and takes its measurements from the caller.
"""
from edgekit.optimize.constraints import Constraints, Measurement
from edgekit.optimize.pipeline import OptimizeConfig, OptimizeResult, optimize

__all__ = ["Constraints", "Measurement", "OptimizeConfig", "OptimizeResult", "optimize"]
