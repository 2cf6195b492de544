"""bf16 as a precision: the FP32 graph computed in bfloat16 by OpenVINO, verified on held-out images,
refused in one line where the CPU or the runtime cannot compute it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit import machine
from edgekit.images.image_set import CalibrationSet
from edgekit.convert.precision import PrecisionSpec
from edgekit.convert.precision_policy import lower_precision
from edgekit.errors import ConfigError, ParityError
from tests.convert.test_precision import PRE, SIZE, small_cnn_onnx, smooth_images

ov = pytest.importorskip("openvino")
needs_bf16 = pytest.mark.skipif(not machine.cpu_bf16(), reason="this CPU has neither AVX-512 BF16 nor AMX")


def test_fp32_is_pinned_where_the_plugin_would_run_bf16(tmp_path: Path):
    """Known answer: on a CPU with bf16 the plugin's own default is bf16, so an FP32 artifact that
    did not pin f32 would silently run in bfloat16."""
    from edgekit.runtime.openvino_rt import OpenVINORunner, OpenVINOSettings

    path = small_cnn_onnx(tmp_path / "m.onnx")
    default = ov.Core().compile_model(str(path), "CPU", {}).get_property("INFERENCE_PRECISION_HINT")
    with OpenVINORunner(path, OpenVINOSettings()) as runner:
        assert runner.execution_precision() == "f32"
    assert (str(default) == "<Type: 'bfloat16'>") == bool(machine.cpu_bf16())


@needs_bf16
def test_bf16_is_the_fp32_graph_run_in_bfloat16_and_verified(tmp_path: Path):
    images = smooth_images(tmp_path / "imgs", 12)
    fp32 = small_cnn_onnx(tmp_path / "seg.onnx")
    held = CalibrationSet(images, (SIZE, SIZE), PRE, samples=12)
    spec = PrecisionSpec("bf16", runtime="openvino")
    lowered = lower_precision(fp32, tmp_path / "bf16.onnx", spec, None, held, "segmentation", 5.0)
    assert (tmp_path / "bf16.onnx").read_bytes() == fp32.read_bytes()  # the graph is FP32's
    check = lowered.check
    assert lowered.verified and check.images == 12 and check.passed and 0 < check.drop < 5.0
    assert 1e-4 < check.error.max_rel < 0.1  # bfloat16's rounding, measured: not an FP32 run
    assert lowered.result.qdq_pairs == 0 and lowered.result.calib_samples == 0
    with pytest.raises(ParityError, match="bf16.onnx loses"):  # random weights' labels flip: the check can fail
        lower_precision(fp32, tmp_path / "bf16.onnx", spec, None, held, "segmentation", 0.01)
    assert not (tmp_path / "bf16.onnx").exists()


def test_bf16_on_onnx_runtime_is_refused_in_one_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="ONNX Runtime has no bf16 kernels") as caught:
        PrecisionSpec("bf16", runtime="onnxruntime")
    assert "\n" not in str(caught.value)


def test_build_refuses_bf16_where_it_cannot_run(tiny_recipe, tmp_path: Path, monkeypatch, capsys):
    from edgekit.cli.main import main

    args = ["build", str(tiny_recipe), "--precision", "bf16", "--latency-runs", "0", "-o"]
    monkeypatch.setattr(machine, "cpu_bf16", lambda: ())
    assert main([*args, str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "neither AVX-512 BF16 nor AMX" in err and "--precision fp32" in err and len(err.splitlines()) == 1
    monkeypatch.setattr(machine, "cpu_bf16", lambda: ("avx512_bf16",))
    assert main([*args, str(tmp_path / "b"), "--runtime", "onnxruntime"]) == 2
    assert "ONNX Runtime has no bf16 kernels" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "c"), "--target", "jetson-orin-nx"]) == 2
    assert "bf16 is a cpu precision" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abc")


@needs_bf16
def test_build_bf16_runs_on_openvino_in_bf16_and_compile_keeps_it(tiny_recipe, tmp_path: Path):
    from edgekit.artifact.folder import load_artifact
    from edgekit.compile.stage import CompileSettings, compile_artifact
    from edgekit.convert.pipeline import BuildConfig, build
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner
    from edgekit.runtime.open import open_runner

    calib = smooth_images(tmp_path / "calib", 4, size=64)
    val = smooth_images(tmp_path / "calib_val", 6, size=64, seed=1)
    result = build(str(tiny_recipe), tmp_path / "bf16", BuildConfig(precision="bf16", calib=calib, latency_runs=1))
    artifact = load_artifact(result.folder)
    m = artifact.manifest
    assert (m.target, m.backend, m.precision, m.engine_file) == ("cpu", "openvino", "bf16", "model.xml")
    session = m.session["openvino"]
    assert session["precision_hint"] == "bf16" and session["execution_precision"] == "bf16"
    assert session["verification"]["holds"] and session["verification"]["reference"].endswith("on OpenVINO")
    assert m.session["runtime_choice"]["by"] == "pinned" and "bf16" in m.session["runtime_choice"]["note"]
    report = json.loads((result.folder / "report.json").read_text())
    stage = next(s for s in report["stages"] if s["stage"] == "precision bf16")
    assert stage["metrics"]["verified"] and stage["metrics"]["images"] == len(list(val.glob("*.png")))
    assert stage["latency_ms"] > 0
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with open_runner(artifact) as bf16, OnnxRuntimeRunner(artifact.model_path) as fp32:
        got, ref = bf16.infer({"input": x}), fp32.infer({"input": x})
    diff = max(float(np.abs(got[k] - ref[k]).max()) for k in ref)
    assert 0 < diff <= 0.1 * max(float(np.abs(v).max()) for v in ref.values())
    with pytest.raises(ConfigError, match="no bf16 kernels"):
        compile_artifact(result.folder, out=tmp_path / "ort", settings=CompileSettings(runtime="onnxruntime"))
    compile_artifact(result.folder, out=tmp_path / "again")  # the bf16 pin holds on recompile
    assert load_artifact(tmp_path / "again").manifest.session["openvino"]["precision_hint"] == "bf16"
