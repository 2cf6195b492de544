"""The device probe: compute capability from the CUDA driver, never from a Jetson's model string."""
from __future__ import annotations

import ctypes

from edgekit import device


class FakeDriver:
    """libcuda's four calls the probe makes, answering for one Orin GPU (compute capability 8.7)."""

    def __init__(self, init: int = 0):
        self.init = init

    def cuInit(self, flags):
        return self.init

    def cuDeviceGet(self, ref, index):
        ref._obj.value = index
        return 0

    def cuDeviceGetAttribute(self, ref, attribute, dev):
        ref._obj.value = {75: 8, 76: 7}[attribute]
        return 0

    def cuDeviceGetName(self, buffer, size, dev):
        ctypes.memmove(buffer, b"Orin (nvgpu)", 12)
        return 0


def test_capability_from_the_driver():
    assert device.cuda_device(lib=FakeDriver()) == ("Orin (nvgpu)", "8.7")


def test_no_driver_no_capability():
    assert device.cuda_device(lib=FakeDriver(init=100)) == (None, None)  # CUDA_ERROR_NO_DEVICE


def test_jetson_model_string_gives_a_name_not_a_capability(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.write_text("NVIDIA Jetson Orin NX Engineering Reference Developer Kit\x00")
    monkeypatch.setattr(device, "JETSON_MODEL", model)
    monkeypatch.setattr(device.shutil, "which", lambda _name: None)
    monkeypatch.setattr(device, "_libcuda", lambda: None)
    assert device._gpu() == ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", None)


class TwoGpus(FakeDriver):
    """A driver with two different GPUs: an 8.9 at CUDA index 0, an 8.7 at index 1."""

    def cuDeviceGetAttribute(self, ref, attribute, dev):
        ref._obj.value = {0: {75: 8, 76: 9}, 1: {75: 8, 76: 7}}[dev.value][attribute]
        return 0


def test_another_gpu_index_is_read_from_the_driver_not_nvidia_smi(monkeypatch):
    """--device 1: the engine check reads CUDA's device 1 (the runner's numbering); nvidia-smi's first
    line describes another GPU and must not be asked."""
    monkeypatch.setattr(device, "_libcuda", TwoGpus)
    monkeypatch.setattr(device.shutil, "which", lambda _name: (_ for _ in ()).throw(AssertionError("nvidia-smi asked")))
    assert device._gpu(1) == ("Orin (nvgpu)", "8.7")
    device.local_device.cache_clear()
    try:
        assert device.local_device(1).compute_capability == "8.7"
    finally:
        device.local_device.cache_clear()
