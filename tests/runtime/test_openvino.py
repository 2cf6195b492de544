"""The OpenVINO backend: the cpu-openvino target's IR compiled, verified, run, profiled per layer."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

from edgekit.artifact.folder import load_artifact  # noqa: E402
from edgekit.artifact.manifest import read_manifest, seal  # noqa: E402
from edgekit.compile.stage import compile_artifact  # noqa: E402
from edgekit.errors import ArtifactError, InputError, ParityError  # noqa: E402
from edgekit.runtime.onnxrt import OnnxRuntimeRunner  # noqa: E402
from edgekit.runtime.open import open_runner  # noqa: E402
from edgekit.runtime.openvino_rt import OpenVINORunner, OpenVINOSettings  # noqa: E402
from tests.conftest import make_cpu_artifact, tiny_segmenter_onnx  # noqa: E402


def _as_openvino(folder: Path) -> Path:
    seal(folder, read_manifest(folder).evolve(target="cpu-openvino", backend="openvino"))
    return folder


def _x(seed: int = 1, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, size, size)).astype(np.float32)


def test_runner_reads_onnx_and_matches_onnx_runtime(tmp_path: Path):
    path = tiny_segmenter_onnx(tmp_path / "m.onnx", batch="batch")
    with OnnxRuntimeRunner(path) as ort, OpenVINORunner(path, OpenVINOSettings(threads=1)) as ov:
        (spec,) = ov.input_specs()
        assert spec.name == "input" and spec.shape == ("?", 3, 64, 64) and spec.dtype == "float32"
        assert [s.name for s in ov.output_specs()] == ["logits"]
        assert ov.execution_precision() == "f32"  # held to FP32 on AMX/BF16 CPUs too
        np.testing.assert_allclose(ov.infer({"input": _x()})["logits"], ort.infer({"input": _x()})["logits"],
                                   rtol=1e-4, atol=1e-4)
        with pytest.raises(InputError, match="float32"):
            ov.infer({"input": _x().astype(np.float64)})


def test_runner_errors_are_one_line(tmp_path: Path):
    with pytest.raises(ArtifactError, match="does not exist"):
        OpenVINORunner(tmp_path / "missing.xml").activate()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="cannot load bad.onnx") as info:
        OpenVINORunner(bad).activate()
    assert "\n" not in str(info.value)


def test_compile_writes_a_verified_ir_and_runs_it(tmp_path: Path):
    folder = _as_openvino(make_cpu_artifact(tmp_path / "a"))
    compile_artifact(folder)
    artifact = load_artifact(folder)
    m = artifact.manifest
    assert m.engine_file == "model.xml" and {"model.xml", "model.bin"} <= set(m.files)
    session = m.session["openvino"]
    assert session["precision_hint"] == "f32" and session["execution_precision"] == "f32"
    check = session["verification"]
    assert check["reference"].endswith("ONNX Runtime") and check["max_abs_error"] <= 1e-3 * max(1.0, check["output_max_abs"])
    assert m.versions["openvino"]
    # weights kept FP32 (ov.save_model would halve them by default)
    assert (folder / "model.bin").stat().st_size >= 0.95 * sum(4 * n for n in (8 * 3 * 9, 8, 3 * 8, 3))
    runner = open_runner(artifact)
    assert isinstance(runner, OpenVINORunner) and runner.model.name == "model.xml"
    with runner, OnnxRuntimeRunner(artifact.model_path) as ort:
        np.testing.assert_allclose(runner.infer({"input": _x(2)})["logits"], ort.infer({"input": _x(2)})["logits"],
                                   rtol=1e-4, atol=1e-4)
    assert artifact.loaded_mb() == pytest.approx(
        ((folder / "model.xml").stat().st_size + (folder / "model.bin").stat().st_size) / 2**20)
    assert isinstance(open_runner(artifact, "onnxruntime"), OnnxRuntimeRunner)  # the deployable ONNX, on request
    assert open_runner(artifact, "onnxruntime").model.name == "model.onnx"


def test_compile_refuses_an_ir_that_differs(tmp_path: Path, monkeypatch):
    folder = _as_openvino(make_cpu_artifact(tmp_path / "a"))
    import edgekit.runtime.openvino_rt as ov_rt

    real = ov_rt.OpenVINORunner._infer
    monkeypatch.setattr(ov_rt.OpenVINORunner, "_infer", lambda self, feed: {k: v + 1.0 for k, v in real(self, feed).items()})
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ParityError, match="OpenVINO's IR differs"):
        compile_artifact(folder)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing half-written


def test_per_layer_profile_names_kernels_and_precision(tmp_path: Path):
    from edgekit.profile.measure import ProfileConfig, profile_artifact
    from edgekit.timing import TimingConfig

    folder = compile_artifact(_as_openvino(make_cpu_artifact(tmp_path / "a")))
    report = profile_artifact(folder, ProfileConfig(timing=TimingConfig(warmup_s=0.0, iterations=3), layers=True,
                                                    layer_runs=3, top=5))
    assert report.backend == "openvino"
    layers = report.layers
    assert layers is not None and layers.source == "openvino" and layers.runs == 3
    ops = {layer.op for layer in layers.layers}
    assert "Convolution" in ops and layers.total_ms > 0
    assert layers.precision_counts.get("fp32", 0) >= 2 and "int8" not in layers.precision_counts
    assert report.conditions.compute_only.startswith("same as end-to-end")


def test_kernel_names_give_the_precision():
    from edgekit.profile.layers import openvino_kernel_precision

    assert openvino_kernel_precision("brgconv_avx512_amx_I8") == "int8"
    assert openvino_kernel_precision("jit_avx2_f32") == "fp32"
    assert openvino_kernel_precision("brgemm_avx512_amx_bf16") == "bf16"
    assert openvino_kernel_precision("undef") == "?"


def test_settings_round_trip_through_the_manifest():
    s = OpenVINOSettings(threads=2, precision_hint="f32")
    assert OpenVINOSettings.from_dict({"threads": 2, "precision_hint": "f32", "performance_hint": "LATENCY"}) == s
    assert s.config()["INFERENCE_NUM_THREADS"] == 2 and "PERF_COUNT" not in s.config()
    assert replace(s, profile=True).config()["PERF_COUNT"] == "YES"
