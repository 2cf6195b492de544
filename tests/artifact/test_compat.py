"""The one device-compatibility check, as pure functions of DeviceInfo values (no TensorRT needed)."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.artifact.compat import (DeviceNeeds, check_device, jetpack_major, needs_of_engine, needs_of_target,
                                     tensorrt_verdict)
from edgekit.artifact.folder import Artifact
from edgekit.artifact.manifest import Manifest, TensorSpec
from edgekit.errors import ConfigError, DeviceMismatchError
from edgekit.device import DeviceInfo
from edgekit.targets import load_target

ORIN_NX = DeviceInfo(gpu_name="Orin", compute_capability="8.7", tensorrt="10.3.0.30", jetpack="R36 (release)")
ORIN_JP5 = DeviceInfo(gpu_name="Orin", compute_capability="8.7", tensorrt="8.5.2.2", jetpack="R35 (release)")
RTX_4090_TRT11 = DeviceInfo(gpu_name="RTX 4090", compute_capability="8.9", tensorrt="11.0.0")
CPU_ONLY = DeviceInfo()


@pytest.mark.parametrize("wanted, have, exact, verdict", [
    ("10.3", "10.3.0.30", False, "ok"),      # JetPack 6's line
    ("10.3", "10.7.0", False, "note"),       # another minor: the same ONNX builds
    ("10.3", "8.5.2", False, "stop"),        # weakly typed 8.x against a strongly typed line
    ("8.5", "8.5.2.2", False, "ok"),         # JetPack 5's line
    ("8.5", "10.3.0", False, "stop"),
    ("10", "10.8.0", False, "ok"),           # a desktop line takes any 10.x
    ("10", "11.0.0", False, "note"),         # ... and TensorRT 11 (strongly typed both)
    ("10.3", "11.0.0", False, "stop"),       # a pinned Jetson line does not
    ("10.3.0.30", "10.3.0.30", True, "ok"),  # an engine: the version that built it
    ("10.3.0", "10.3.1", True, "stop"),
])
def test_tensorrt_version_branches(wanted, have, exact, verdict):
    assert tensorrt_verdict(wanted, have, exact) == verdict


def test_jetpack_from_l4t_release():
    assert jetpack_major("R36 (release)") == "6" and jetpack_major("R35 (release)") == "5"
    assert jetpack_major(None) is None and jetpack_major("R99") is None


# --- compile: the device against the target -------------------------------------------------


def test_matching_jetson_passes_without_notes():
    assert check_device(needs_of_target(load_target("jetson-orin-nx")), ORIN_NX, dla_cores=2, use_dla=True) == []
    assert check_device(needs_of_target(load_target("jetson-orin-nx-jp5")), ORIN_JP5, dla_cores=2) == []


@pytest.mark.parametrize("device, match", [
    (ORIN_JP5, "TensorRT 10.3, this device has TensorRT 8.5.2.2"),
    (DeviceInfo(gpu_name="RTX 4090", compute_capability="8.9", tensorrt="10.3.0"), "compute capability 8.7"),
    (DeviceInfo(gpu_name="Orin", compute_capability="8.7", tensorrt="10.3.0", jetpack="R35 (release)"), "JetPack 6"),
    (CPU_ONLY, "TensorRT is not installed here"),
])
def test_another_tensorrt_line_gpu_or_jetpack_stops(device, match):
    with pytest.raises(DeviceMismatchError, match=match):
        check_device(needs_of_target(load_target("jetson-orin-nx")), device, dla_cores=2)


def test_a_desktop_target_builds_on_tensorrt_11_with_a_note():
    notes = check_device(needs_of_target(load_target("rtx-4090")), RTX_4090_TRT11, dla_cores=0)
    assert len(notes) == 1 and "11.0.0" in notes[0]


def test_dla_where_there_is_none_stops():
    with pytest.raises(ConfigError, match="the target has no DLA.*--no-dla"):
        check_device(needs_of_target(load_target("jetson-orin-nano")), ORIN_NX, dla_cores=0, use_dla=True)
    with pytest.raises(ConfigError, match="this device has no DLA"):
        check_device(needs_of_target(load_target("jetson-orin-nx")), ORIN_NX, dla_cores=0, use_dla=True)


def test_minor_version_dla_count_and_non_jetson_only_warn():
    device = DeviceInfo(gpu_name="Orin", compute_capability="8.7", tensorrt="10.7.0", jetpack="R36 (release)")
    notes = check_device(needs_of_target(load_target("jetson-orin-nx")), device, dla_cores=0)
    assert len(notes) == 2 and "10.7.0" in notes[0] and "DLA" in notes[1]
    desk = DeviceInfo(gpu_name="some 8.7 board", compute_capability="8.7", tensorrt="10.3.0")
    assert any("not a Jetson" in n for n in check_device(needs_of_target(load_target("jetson-orin-nx")), desk))


# --- loading: the device against the engine's builder ----------------------------------------


def _engine_artifact(tensorrt="10.3.0.30", cc="8.7", jetpack="R36 (release)") -> Artifact:
    m = Manifest(target="jetson-orin-nx", backend="tensorrt", precision="fp16", model_file="model.onnx",
                 engine_file="model.engine", inputs=(TensorSpec("input", (1, 3, 8, 8)),),
                 outputs=(TensorSpec("logits", (1, 2, 8, 8)),), versions={"tensorrt": tensorrt},
                 device={"gpu_name": "Orin", "compute_capability": cc, "jetpack": jetpack})
    return Artifact(Path("/models/sa12"), m)


def test_engine_runs_where_it_was_built():
    assert _engine_artifact().check_device(ORIN_NX) == []


@pytest.mark.parametrize("device, match", [
    (DeviceInfo(gpu_name="Orin", compute_capability="8.7", tensorrt="10.3.1", jetpack="R36 (release)"),
     "TensorRT 10.3.0.30, this device has TensorRT 10.3.1.*edgekit compile /models/sa12"),
    (DeviceInfo(gpu_name="RTX 4090", compute_capability="8.9", tensorrt="10.3.0.30"), "compute capability 8.7"),
    (CPU_ONLY, "not installed here.*--backend onnxruntime"),
])
def test_engine_elsewhere_stops_with_the_fix(device, match):
    with pytest.raises(DeviceMismatchError, match=match):
        _engine_artifact().check_device(device)


def test_one_rule_set_for_both_callers():
    """A target and an engine needing the same thing get the same verdict from the same function."""
    target_needs = needs_of_target(load_target("jetson-orin-nx"))
    engine_needs = needs_of_engine(_engine_artifact().manifest, "/models/sa12")
    assert isinstance(target_needs, DeviceNeeds) and isinstance(engine_needs, DeviceNeeds)
    assert (target_needs.compute_capability, target_needs.jetpack) == (engine_needs.compute_capability, engine_needs.jetpack)
    assert engine_needs.exact and not target_needs.exact
