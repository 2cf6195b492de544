"""GPU power and clocks through NVML on a desktop GPU, tested with NVML's answers given by hand."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from edgekit.profile.nvml import NvmlReader, nvml_sample
from edgekit.profile.tegrastats import summarize


class FakeNVML:
    """The NVML calls the reader makes, answering like an RTX under load (power in mW, clocks in MHz)."""

    NVML_TEMPERATURE_GPU, NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 1, 2

    def __init__(self, fail: Exception | None = None):
        self.fail, self.power, self.shut = fail, 250_000, False

    def nvmlInit(self):
        if self.fail:
            raise self.fail

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"gpu{index}"

    def nvmlDeviceGetPowerUsage(self, handle):
        self.power += 2_000
        return self.power

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=97, memory=40)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 66

    def nvmlDeviceGetClockInfo(self, handle, clock):
        return {1: 2520, 2: 10501}[clock]

    def nvmlShutdown(self):
        self.shut = True


def test_one_sample_carries_power_load_temperature_and_clocks():
    sample = nvml_sample(FakeNVML(), "gpu0")
    assert sample.rails == {"GPU": 252_000} and sample.board_power_mw == 252_000.0
    assert sample.gpu_load == 97 and sample.temperatures == {"GPU": 66.0}
    assert sample.clocks_mhz == {"SM": 2520, "MEM": 10501}


def test_reader_keeps_only_what_was_recorded_and_summary_gives_watts_and_clocks():
    nvml = FakeNVML()
    with NvmlReader(interval_ms=5, nvml=nvml) as reader:
        time.sleep(0.05)  # warm-up samples: dropped by record()
        reader.record()
        time.sleep(0.1)
    assert reader.available and nvml.shut and len(reader.samples) >= 3
    watts = [s.board_power_mw / 1000 for s in reader.samples]
    summary = summarize(reader.samples, seconds=0.1, images=10, reader="nvml")
    assert summary.available and summary.reader == "nvml" and summary.source == "GPU"
    assert summary.mean_w == pytest.approx(sum(watts) / len(watts)) and summary.peak_w == max(watts)
    assert summary.clocks_mean_mhz == {"MEM": 10501, "SM": 2520}
    assert summary.mj_per_image == pytest.approx(summary.mean_w * 0.1 * 1000 / 10)


def test_without_nvml_or_gpu_the_reader_says_why(monkeypatch):
    import edgekit.profile.nvml as nvml_module

    monkeypatch.setattr(nvml_module, "_pynvml", lambda: None)
    assert "pip install nvidia-ml-py" in NvmlReader().why_not
    broken = NvmlReader(nvml=FakeNVML(fail=RuntimeError("NVML Shared Library Not Found")))
    assert not broken.available and "NVML Shared Library Not Found" in broken.why_not
    with broken:
        broken.record()
    assert broken.samples == []


def test_cpu_artifact_profile_says_why_it_has_no_power(cpu_artifact):
    from edgekit.profile.measure import ProfileConfig, profile_artifact
    from edgekit.timing import TimingConfig

    timing = TimingConfig(warmup_s=0.0, iterations=2, min_iterations=1)
    report = profile_artifact(cpu_artifact, ProfileConfig(batches=(1,), timing=timing, layers=False))
    power = report.batches[0].power
    assert not power.available and "runs on the CPU" in power.note
