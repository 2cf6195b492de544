"""Engine building. What is decided before TensorRT (version branch, profile, DLA core, build flags,
the settings compile resolves) is tested everywhere; builds need TensorRT and a GPU (``trt``)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgekit.artifact.manifest import TensorSpec, read_manifest, seal
from edgekit.compile.engine import (BuildMode, EngineSettings, batch_profile, build_engine, build_flags, build_mode,
                                    check_dla_core, profile_batch)
from edgekit.compile.stage import CompileSettings, engine_settings
from edgekit.errors import ConfigError
from edgekit.targets import load_target

from tests.conftest import make_cpu_artifact, tiny_segmenter_onnx


@pytest.mark.parametrize("version", ["10.3.0.30", "10.14.1", "11.0.0"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_10_and_later_build_strongly_typed_without_flags(version, precision):
    assert build_mode(version, precision) == BuildMode(strongly_typed=True, fp16=False, int8=False)


@pytest.mark.parametrize("precision, fp16, int8", [("fp32", False, False), ("fp16", True, False), ("int8", True, True)])
def test_tensorrt_8_gets_flags_matching_the_precision(precision, fp16, int8):
    assert build_mode("8.5.2.2", precision) == BuildMode(strongly_typed=False, fp16=fp16, int8=int8)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="fp16"):
        EngineSettings(precision="bf8")
    with pytest.raises(ConfigError, match="workspace"):
        EngineSettings(workspace_mb=0)
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        EngineSettings(batch=(4, 2, 4))
    with pytest.raises(ConfigError, match="DLA core"):
        EngineSettings(dla_core=-1)


def test_profile_batch_is_the_targets_and_fixed_on_dla():
    assert profile_batch(4, dla=False) == (1, 4, 4)
    assert profile_batch(4, dla=True) == (4, 4, 4)  # DLA runs no dynamic dimension
    with pytest.raises(ConfigError):
        profile_batch(0, dla=False)


def test_batch_profile_from_the_onnx_inputs():
    assert batch_profile((TensorSpec("input", (1, 3, 8, 8)),), (1, 1, 1)) is None  # static: no profile
    profile = batch_profile((TensorSpec("input", ("N", 3, 8, 8)), TensorSpec("scale", (1, 2))), (1, 2, 4))
    assert profile == {"input": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)), "scale": ((1, 2),) * 3}
    with pytest.raises(ConfigError, match="only the batch axis.*--input-size"):
        batch_profile((TensorSpec("input", ("N", 3, "H", 8)),), (1, 2, 4))


def test_dla_core_is_checked_against_the_target_in_one_line():
    nx, nano, cpu = load_target("jetson-orin-nx"), load_target("jetson-orin-nano"), load_target("cpu")
    check_dla_core(None, cpu, "fp32")  # the GPU (or CPU) only: nothing to check
    check_dla_core(1, nx, "int8")
    for core, target, precision, match in [(2, nx, "fp16", "core 2 does not exist on jetson-orin-nx, which has 2: "
                                                             "use --dla-core 0 or 1, or drop --dla-core"),
                                           (0, nano, "fp16", "jetson-orin-nano has no DLA cores; drop --dla-core"),
                                           (0, cpu, "fp16", "cpu has no DLA cores"),
                                           (0, nx, "fp32", "FP16 or INT8 only")]:
        with pytest.raises(ConfigError, match=match) as err:
            check_dla_core(core, target, precision)
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="compile with --no-dla"):
        check_dla_core(0, nano, "fp16", off="compile with --no-dla")


def test_build_flags_hold_what_changes_an_engine():
    flags = build_flags(EngineSettings(workspace_mb=256, dla_core=0, sparse_weights=True), BuildMode(True))
    assert flags == {"strongly_typed": True, "fp16": False, "int8": False, "workspace_mb": 256,
                     "sparse_weights": True, "gpu_fallback": True, "profiling_verbosity": "detailed"}
    assert build_flags(EngineSettings(), BuildMode(False, True))["gpu_fallback"] is False


def _tensorrt_artifact(folder: Path, target: str = "jetson-orin-nx", precision: str = "fp16", batch="N",
                       requested: dict | None = None) -> Path:
    make_cpu_artifact(folder, size=32, batch=batch)
    m = read_manifest(folder)
    seal(folder, m.evolve(target=target, backend="tensorrt", precision=precision,
                          session={"tensorrt": requested or {}}))
    return folder


@pytest.mark.parametrize("settings, requested, core", [
    (CompileSettings(), {}, None),
    (CompileSettings(), {"dla": True, "dla_core": 1}, 1),  # as the build asked
    (CompileSettings(dla=True), {}, 0),
    (CompileSettings(dla_core=1), {}, 1),
    (CompileSettings(dla_core=0), {"dla": True, "dla_core": 1}, 0),  # --dla-core over the build
    (CompileSettings(dla=False), {"dla": True, "dla_core": 1}, None),  # --no-dla over the build
])
def test_compile_resolves_the_dla_core_and_the_profile(tmp_path: Path, settings, requested, core):
    m = read_manifest(_tensorrt_artifact(tmp_path / "a", requested=requested))
    eng = engine_settings(m, load_target("jetson-orin-nx"), settings)
    batch = load_target("jetson-orin-nx").batch
    assert eng.dla_core == core
    assert eng.batch == ((batch, batch, batch) if core is not None else (1, batch, batch))


def test_compile_refuses_a_dla_core_the_target_lacks(tmp_path: Path):
    m = read_manifest(_tensorrt_artifact(tmp_path / "a"))
    with pytest.raises(ConfigError, match="use --dla-core 0 or 1, or compile with --no-dla"):
        engine_settings(m, load_target("jetson-orin-nx"), CompileSettings(dla_core=2))


def test_build_stops_before_any_work_on_a_dla_core_the_target_lacks(tmp_path: Path):
    from edgekit.convert.pipeline import BuildConfig, build

    with pytest.raises(ConfigError, match="cpu has no DLA cores; drop --dla-core"):
        build("no-such-source", tmp_path / "out", BuildConfig(target="cpu", dla_core=0))
    with pytest.raises(ConfigError, match="FP16 or INT8 only"):
        build("no-such-source", tmp_path / "out", BuildConfig(target="jetson-orin-nx", dla_core=0))
    assert not (tmp_path / "out").exists()


def test_the_trtexec_hand_off_carries_the_dla_core():
    jp5 = load_target("jetson-orin-nx-jp5")
    assert jp5.next_step("out", "int8", "model.onnx", dla_core=1).endswith("--int8 --fp16 --useDLACore=1 --allowGPUFallback")
    assert "useDLACore" not in jp5.next_step("out", "int8", "model.onnx")


# --- on a device where TensorRT imports ------------------------------------------------------


@pytest.fixture
def trt():
    trt = pytest.importorskip("tensorrt")
    pytest.importorskip("polygraphy")
    if trt.Builder(trt.Logger(trt.Logger.ERROR)) is None:
        pytest.skip("TensorRT finds no GPU here")
    return trt


@pytest.mark.trt
def test_static_engine_with_timing_cache(trt, tmp_path: Path):
    onnx_path = tiny_segmenter_onnx(tmp_path / "m.onnx", size=32)
    cache = tmp_path / "timing" / "timing.cache"
    mode = build_engine(onnx_path, tmp_path / "m.engine", (TensorSpec("input", (1, 3, 32, 32)),),
                        EngineSettings(workspace_mb=64, timing_cache=cache))
    assert mode.strongly_typed == (int(trt.__version__.split(".")[0]) >= 10)
    assert (tmp_path / "m.engine").stat().st_size > 0 and cache.stat().st_size > 0


@pytest.mark.trt
def test_dynamic_batch_gets_a_profile(trt, tmp_path: Path):
    from edgekit.runtime.trt import deserialize_engine

    onnx_path = tiny_segmenter_onnx(tmp_path / "m.onnx", size=32, batch="N")
    build_engine(onnx_path, tmp_path / "m.engine", (TensorSpec("input", ("N", 3, 32, 32)),),
                 EngineSettings(workspace_mb=64, batch=(1, 2, 4)))
    _runtime, engine = deserialize_engine(trt, tmp_path / "m.engine")
    lo, opt, hi = engine.get_tensor_profile_shape("input", 0)
    assert (lo[0], opt[0], hi[0]) == (1, 2, 4)


@pytest.mark.trt
def test_engines_carry_layer_details(trt, tmp_path: Path):
    from edgekit.compile.placement import engine_placement

    onnx_path = tiny_segmenter_onnx(tmp_path / "m.onnx", size=32)
    build_engine(onnx_path, tmp_path / "m.engine", (TensorSpec("input", (1, 3, 32, 32)),), EngineSettings(workspace_mb=64))
    placement = engine_placement(tmp_path / "m.engine")
    assert placement.detailed and placement.dla == () and placement.gpu  # a GPU engine: every layer on the GPU
    if tuple(int(v) for v in trt.__version__.split(".")[:2]) >= (8, 6):  # layers name their ONNX nodes from 8.6
        assert {"conv1", "conv2"} <= set(placement.onnx_on_gpu)


@pytest.mark.trt
def test_a_dla_engine_lists_its_placement(trt, tmp_path: Path):
    from edgekit.compile.engine import device_dla_cores
    from edgekit.compile.placement import engine_placement

    if device_dla_cores() == 0:
        pytest.skip("no DLA on this device")
    onnx_path = tiny_segmenter_onnx(tmp_path / "m.onnx", size=32)
    build_engine(onnx_path, tmp_path / "m.engine", (TensorSpec("input", (1, 3, 32, 32)),),
                 EngineSettings(precision="fp16", workspace_mb=64, dla_core=0))
    placement = engine_placement(tmp_path / "m.engine", 0)
    assert placement.dla and placement.gpu == ()  # conv, relu, conv: all DLA layers


def _this_gpu_target(folder: Path, trt) -> Path:
    from edgekit.device import local_device

    folder.mkdir(parents=True, exist_ok=True)
    line = ".".join(trt.__version__.split(".")[:2])
    (folder / "this-gpu.yaml").write_text(f"name: this-gpu\nkind: desktop\nbackend: tensorrt\ncompute_capability: "
                                          f"\"{local_device().compute_capability}\"\ntensorrt: \"{line}\"\nbatch: 2\n"
                                          "workspace_mb: 256\n")
    return folder


@pytest.mark.trt
def test_a_second_compile_builds_nothing_and_a_changed_setting_rebuilds(trt, tmp_path: Path):
    from edgekit.artifact.layout import ENGINE_CACHE
    from edgekit.compile.engine_cache import cache_line
    from edgekit.compile.stage import compile_artifact

    targets = _this_gpu_target(tmp_path / "targets", trt)
    folder = _tensorrt_artifact(tmp_path / "a", target="this-gpu", precision="fp32")
    start = time.time()
    compile_artifact(folder, settings=CompileSettings(targets_dir=targets))
    first = read_manifest(folder)
    digest = first.session["tensorrt"]["engine_key"]
    assert "built in" in cache_line(folder, digest, start)
    assert first.session["tensorrt"]["timing_cache"].startswith(f"{ENGINE_CACHE}/timing-trt")
    again = time.time()
    compile_artifact(folder, settings=CompileSettings(targets_dir=targets))
    second = read_manifest(folder)
    assert "nothing built" in cache_line(folder, digest, again)
    assert second.files["model.engine"] == first.files["model.engine"] and second.identity == first.identity
    compile_artifact(folder, settings=CompileSettings(targets_dir=targets, workspace_mb=128))
    assert read_manifest(folder).session["tensorrt"]["engine_key"] != digest
