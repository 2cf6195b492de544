"""Profiling and comparison of artifacts on this device. Never imports torch.

Measuring lives in ``measure`` (one artifact) and ``compare`` (several on the same images);
formatting in ``format`` and ``plot``, apart from measuring.
"""
from edgekit.profile.compare import CompareConfig, CompareReport, compare_artifacts
from edgekit.timing import LatencyStats, TimingConfig, latency_stats
from edgekit.profile.measure import ProfileConfig, ProfileReport, profile_artifact

__all__ = [
    "CompareConfig", "CompareReport", "compare_artifacts",
    "LatencyStats", "TimingConfig", "latency_stats",
    "ProfileConfig", "ProfileReport", "profile_artifact",
]
