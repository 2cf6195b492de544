"""profile_artifact on tiny cpu artifacts: batches, counts, layers, memory, conditions; torch-free."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.errors import ArtifactError, InputError
from edgekit.profile import ProfileConfig, TimingConfig, profile_artifact
from tests.profile.profile_fixtures import make_cpu_artifact

FAST = TimingConfig(warmup_s=0.05, duration_s=0, iterations=15)


def test_profile_of_a_fixed_batch_artifact(tmp_path: Path):
    folder = make_cpu_artifact(tmp_path / "a", size=32)
    report = profile_artifact(folder, ProfileConfig(timing=FAST, layers=True, top=2, layer_runs=3))
    (b,) = report.batches
    assert b.batch == 1 and b.end_to_end.count == 15 and len(b.samples_ms) == 15
    assert b.end_to_end.min <= b.end_to_end.p50 <= b.end_to_end.p99 <= b.end_to_end.max
    assert b.images_per_s == pytest.approx(1000 / b.end_to_end.mean)
    assert b.mpx_per_s == pytest.approx(b.images_per_s * 32 * 32 / 1e6)
    assert b.compute is None and "same as end-to-end" in report.conditions.compute_only
    assert report.conditions.providers == ("CPUExecutionProvider",) and report.conditions.cuda_graphs is False
    assert not b.power.available and b.power.note
    assert report.layers is not None and len(report.layers.layers) == 2
    assert report.memory.rss_after_load >= report.memory.rss_before_load > 0
    assert report.memory.model_file == pytest.approx((folder / "model.onnx").stat().st_size / 2**20)
    assert report.input_hw == (32, 32)
    json.dumps(report.to_dict(samples=True))  # serialisable as is


def test_dynamic_batch_runs_each_asked_batch(tmp_path: Path):
    folder = make_cpu_artifact(tmp_path / "a", size=16, batch="N")
    report = profile_artifact(folder, ProfileConfig(batches=(1, 3), timing=FAST))
    assert [b.batch for b in report.batches] == [1, 3]
    assert report.batches[1].images_per_s == pytest.approx(3000 / report.batches[1].end_to_end.mean)


def test_batch_beyond_a_fixed_batch_names_what_it_takes(tmp_path: Path):
    folder = make_cpu_artifact(tmp_path / "a", size=16, batch=1)
    with pytest.raises(InputError, match="batch 1 only.*not 4"):
        profile_artifact(folder, ProfileConfig(batches=(4,), timing=FAST))


def test_missing_artifact(tmp_path: Path):
    with pytest.raises(ArtifactError, match="does not exist"):
        profile_artifact(tmp_path / "nothing", ProfileConfig(timing=FAST))


def test_profile_modules_never_import_torch():
    code = ("import sys, pkgutil, importlib, edgekit.profile as p\n"
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(p.__path__, 'edgekit.profile.')]\n"
            "import edgekit.cli.profile, edgekit.cli.compare\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_a_detector_is_profiled_like_any_artifact(tmp_path: Path):
    from tests.detect.detect_fixtures import make_detector_artifact

    folder = make_detector_artifact(tmp_path / "det", size=64)
    report = profile_artifact(folder, ProfileConfig(timing=TimingConfig(warmup_s=0.0, iterations=3), layers=True, layer_runs=2))
    assert report.task == "detection" and report.input_hw == (64, 64)
    assert report.batches[0].end_to_end.count == 3 and report.layers is not None
    assert {layer.op for layer in report.layers.layers} >= {"AveragePool"}
