from __future__ import annotations

import pytest

from edgekit.errors import ConfigError
from edgekit.optimize.constraints import Constraints, Measurement, parse_latency, parse_throughput


@pytest.mark.parametrize("text, ms", [("40", 40.0), ("40ms", 40.0), ("0.04s", 40.0), (" 5 ms ", 5.0), (None, None)])
def test_parse_latency(text, ms):
    assert parse_latency(text) == ms


def test_parse_bad_values():
    with pytest.raises(ConfigError, match="40ms"):
        parse_latency("fast")
    with pytest.raises(ConfigError, match="img/s"):
        parse_throughput("lots")
    assert parse_throughput("25img/s") == 25.0
    with pytest.raises(ConfigError, match="max-drop"):
        Constraints(max_drop=-1)


def test_violations_name_every_broken_limit():
    m = Measurement("x", drop=1.0, latency_ms=50.0, size_mb=12.0, batch=2)
    c = Constraints(max_drop=0.5, max_latency_ms=40, min_throughput=100, max_size_mb=10)
    broken = c.violations(m)
    assert len(broken) == 4 and not c.holds(m)
    assert m.throughput == pytest.approx(40.0)
    assert Constraints(max_drop=1.0, max_latency_ms=50).holds(m)
