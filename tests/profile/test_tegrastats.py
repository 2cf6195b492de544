"""The tegrastats parser on real lines, the power summary, and the background reader."""
from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from edgekit.profile.tegrastats import TegrastatsReader, parse_line, summarize

# Printed by `sudo tegrastats --interval 100` on a Jetson AGX Orin 64 GB (JetPack 6), timestamp included.
# Fields follow NVIDIA's documented grammar (RAM X/Y (lfb NxZ), CPU [X%@Z,...], GR3D_FREQ X%@[Y,Y]).
AGX_ORIN = (
    "11-21-2025 08:49:48 RAM 13983/62780MB (lfb 424x4MB) SWAP 126/31390MB (cached 0MB) "
    "CPU [90%@2201,100%@2201,100%@2201,100%@2201,100%@2201,100%@2201,100%@2201,100%@2201,100%@2201,"
    "100%@2201,100%@2201,100%@2201] EMC_FREQ 1%@2133 GR3D_FREQ 14%@[407,407] VIC_FREQ 115 NVDLA0_FREQ @1600 "
    "APE 174 CV0@73.625C CPU@77.281C Tboard@62C SOC2@70C Tdiode@62.25C SOC0@69.531C CV1@72.5C GPU@69.125C "
    "tj@77.281C SOC1@68.968C CV2@67.25C VDD_GPU_SOC 3150mW/2971mW VDD_CPU_CV 14312mW/12415mW "
    "VIN_SYS_5V0 4968mW/5048mW VDDQ_VDD2_1V8AO 1091mW/1091mW"
)
# Jetson Nano, JetPack 4.6.1: rails without a unit, an input rail (POM_5V_IN), IRAM field.
NANO = (
    "RAM 1923/3964MB (lfb 2x2MB) SWAP 191/1982MB (cached 6MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [5%@1224,4%@1224,3%@1224,6%@1224] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@37C CPU@40C "
    "PMIC@50C GPU@40C AO@45C thermal@40C POM_5V_IN 1750/1628 POM_5V_GPU 0/0 POM_5V_CPU 366/406"
)


def test_agx_orin_line():
    s = parse_line(AGX_ORIN)
    assert s.rails == {"VDD_GPU_SOC": 3150, "VDD_CPU_CV": 14312, "VIN_SYS_5V0": 4968, "VDDQ_VDD2_1V8AO": 1091}
    assert (s.ram_used_mb, s.ram_total_mb) == (13983, 62780)
    assert s.gpu_load == 14
    assert len(s.cpu_loads) == 12 and s.cpu_loads[0] == 90
    assert s.temperatures["tj"] == pytest.approx(77.281) and s.temperatures["Tboard"] == 62
    assert s.board_power_mw == 3150 + 14312 + 4968 + 1091  # no input rail on AGX Orin: sum of rails
    assert s.power_source == "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0+VDDQ_VDD2_1V8AO"


def test_nano_line_uses_its_input_rail():
    s = parse_line(NANO)
    assert s.rails == {"POM_5V_IN": 1750, "POM_5V_GPU": 0, "POM_5V_CPU": 366}
    assert s.board_power_mw == 1750 and s.power_source == "POM_5V_IN"
    assert s.cpu_loads == (5, 4, 3, 6) and s.gpu_load == 0
    assert "RAM" not in s.rails and "SWAP" not in s.rails and "IRAM" not in s.rails


def test_offline_core_and_line_without_rails():
    s = parse_line("RAM 2000/7860MB (lfb 1x4MB) CPU [12%@1190,off,off,3%@1190] GR3D_FREQ 0%@[305]")
    assert s.cpu_loads == (12, None, None, 3)
    assert s.board_power_mw is None and s.rails == {}


def test_summary_mean_power_and_energy_per_image():
    lines = [AGX_ORIN, AGX_ORIN.replace("VDD_CPU_CV 14312mW", "VDD_CPU_CV 10312mW")]
    p = summarize([parse_line(x) for x in lines], seconds=2.0, images=100)
    first, second = 23521 / 1000, 19521 / 1000
    assert p.available and p.samples == 2
    assert p.mean_w == pytest.approx((first + second) / 2)
    assert p.peak_w == pytest.approx(first)
    assert p.mj_per_image == pytest.approx(p.mean_w * 2.0 * 1000 / 100)
    assert p.rails_mean_w["VDD_CPU_CV"] == pytest.approx(12.312)


def test_summary_without_rails_says_why():
    p = summarize([parse_line("RAM 1/2MB")], 1.0, 1)
    assert not p.available and "no power rails" in p.note


def test_reader_without_tegrastats_is_empty(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with TegrastatsReader(executable=None) as reader:
        reader.record()
    if reader.executable is None:
        assert not reader.available and reader.samples == []


def test_reader_reads_lines_of_a_tegrastats_like_program(tmp_path: Path):
    script = tmp_path / "tegrastats"
    script.write_text("#!/bin/sh\nwhile true; do echo '" + NANO + "'; sleep 0.02; done\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    with TegrastatsReader(interval_ms=20, executable=str(script)) as reader:
        time.sleep(0.2)
        reader.record()
        time.sleep(0.4)
    assert reader.available and len(reader.samples) >= 3
    assert all(s.board_power_mw == 1750 for s in reader.samples)
    assert all(s.time > 0 for s in reader.samples)
