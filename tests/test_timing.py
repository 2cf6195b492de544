"""Statistics against numpy on known samples, and the timing loop with a fake clock."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import ConfigError
from edgekit.timing import TimingConfig, latency_stats, time_calls


def test_stats_match_numpy_on_known_samples():
    samples = np.random.default_rng(3).lognormal(0.0, 0.5, 1001)
    s = latency_stats(samples)
    assert s.count == 1001
    assert s.min == samples.min() and s.max == samples.max()
    assert s.mean == pytest.approx(samples.mean())
    for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert getattr(s, name) == pytest.approx(np.percentile(samples, q))
    assert s.std == pytest.approx(samples.std(ddof=1))


def test_percentiles_interpolate_between_samples():
    s = latency_stats([1.0, 2.0, 3.0, 4.0])
    assert s.p50 == 2.5
    assert s.p90 == pytest.approx(3.7)
    assert s.min <= s.p50 <= s.p90 <= s.p95 <= s.p99 <= s.max


def test_one_sample_has_zero_std_and_no_samples_is_an_error():
    assert latency_stats([5.0]).std == 0.0
    with pytest.raises(ValueError):
        latency_stats([])


class FakeClock:
    """Advances 1 ms per reading, so each call of a no-op function 'takes' 1 ms."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        self.ns += 1_000_000
        return self.ns


def test_count_mode_runs_exactly_that_many_after_warmup():
    calls = []
    marks = []
    samples = time_calls(lambda: calls.append(1), TimingConfig(warmup_s=0.01, iterations=7),
                         on_counted=lambda: marks.append(len(calls)), clock=FakeClock())
    assert len(samples) == 7
    assert len(marks) == 1 and marks[0] >= 1  # warm-up ran before counted runs began
    assert len(calls) == marks[0] + 7
    assert np.all(samples == 1.0)


def test_time_mode_honours_duration_and_minimum():
    by_time = time_calls(lambda: None, TimingConfig(warmup_s=0, duration_s=0.05, min_iterations=1), clock=FakeClock())
    assert 10 <= len(by_time) <= 30  # ~50 ms of 1 ms calls (each loop reads the clock more than once)
    at_least = time_calls(lambda: None, TimingConfig(warmup_s=0, duration_s=0, min_iterations=12), clock=FakeClock())
    assert len(at_least) == 12


@pytest.mark.parametrize("kwargs", [{"warmup_s": -1}, {"duration_s": -0.5}, {"iterations": -2}, {"min_iterations": 0}])
def test_bad_timing_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        TimingConfig(**kwargs)


def _runtime(name: str, log: list[str], cold_ms: float):
    """A callable that runs slowly right after a different one (another runtime's threads still
    spinning, modelled as a sleep) and fast right after itself."""
    import time

    def run():
        if log and log[-1] != name:
            time.sleep(cold_ms / 1e3)
        log.append(name)
    return run


def test_turns_of_two_time_each_callable_after_itself():
    from edgekit.timing import interleaved_medians

    log: list[str] = []
    fns = [_runtime("a", log, 30.0), _runtime("b", log, 30.0)]
    settled = interleaved_medians(fns, 3, settle=1)
    assert log == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert max(settled) < 15.0  # the timed run followed its own: no 30 ms switch counted
    log.clear()
    strict = interleaved_medians(fns, 3)
    assert log == ["a", "b"] * 4 and min(strict) >= 30.0  # strict turns charge every switch


def test_negative_settle_is_refused():
    from edgekit.timing import interleaved_medians

    with pytest.raises(ValueError):
        interleaved_medians([lambda: None], 1, settle=-1)
