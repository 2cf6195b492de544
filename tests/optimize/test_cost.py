"""Per-node costs: measured from ONNX Runtime profiles, or estimated from MACs."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.optimize.cost import estimated_node_costs, profiled_node_costs
from tests.convert.test_mixed_precision import graphs  # noqa: F401  (module-scoped fixture)
from tests.optimize.optimize_fixtures import NODES


def test_profiled_costs_cover_every_quantized_node(graphs):  # noqa: F811
    costs = profiled_node_costs(graphs["model"], graphs["qdq"], set(NODES), graphs["x"], runs=3)
    assert set(costs) == set(NODES)
    assert all(c.measured and c.fp32_ms > 0 and c.int8_ms > 0 for c in costs.values())


def test_estimates_follow_macs_and_are_marked(graphs):  # noqa: F811
    costs = estimated_node_costs(graphs["model"], set(NODES), fp32_latency_ms=10.0)
    assert sum(c.fp32_ms for c in costs.values()) == pytest.approx(10.0)
    # conv1: 8 outputs x 27 MACs, conv2: 8 x 8, conv3: 3 x 8 per pixel
    assert costs["conv1"].fp32_ms / costs["conv2"].fp32_ms == pytest.approx(27 / 8)
    assert all(not c.measured and c.gain_ms > 0 for c in costs.values())
    assert np.isclose(costs["conv3"].fp32_ms / costs["conv2"].fp32_ms, 3 / 8)
