"""The compile stage: ONNX Runtime plans here, the device checks as pure functions, bundle input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.compile.stage import CompileSettings, compile_artifact, engine_settings
from edgekit.artifact.bundle import package_artifact
from edgekit.errors import ArtifactError, BackendUnavailableError, ConfigError
from edgekit.artifact.manifest import read_manifest, seal
from edgekit.artifact.folder import load_artifact
from edgekit.runtime.onnxrt import OnnxRuntimeRunner
from edgekit.targets import load_target


def _outputs(runner, x):
    with runner:
        return runner.infer({"input": x})["logits"]


def _as_tensorrt(folder: Path, target: str = "jetson-orin-nx", precision: str = "fp16") -> Path:
    m = read_manifest(folder)
    seal(folder, m.evolve(target=target, backend="tensorrt", precision=precision))
    return folder


def test_cpu_plan_in_place_matches_the_onnx(cpu_artifact: Path):
    out = compile_artifact(cpu_artifact)
    assert out == cpu_artifact
    artifact = load_artifact(out)  # re-sealed: checksums of the plan included
    m = artifact.manifest
    assert m.engine_file == "model.ort.onnx" and "model.ort.onnx" in m.files
    session = m.session["onnxruntime"]
    assert session["providers"] == ["CPUExecutionProvider"] and session["plan_optimization"] in ("basic", "extended")
    assert session["verification"]["max_abs_error"] <= 1e-3 * max(1.0, session["verification"]["output_max_abs"])
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    ref = _outputs(OnnxRuntimeRunner(artifact.model_path), x)
    got = _outputs(artifact.runner(), x)
    assert isinstance(artifact.runner(), OnnxRuntimeRunner) and artifact.runner().model.name == "model.ort.onnx"
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_compile_to_another_folder_leaves_the_source_alone(cpu_artifact: Path, tmp_path: Path):
    before = (cpu_artifact / "manifest.json").read_text()
    out = compile_artifact(cpu_artifact, out=tmp_path / "compiled", settings=CompileSettings(threads=1))
    assert (cpu_artifact / "manifest.json").read_text() == before
    assert not (cpu_artifact / "model.ort.onnx").exists()
    assert read_manifest(out).session["onnxruntime"]["threads"] == 1


def test_compile_a_bundle_defaults_to_its_name(cpu_artifact: Path, tmp_path: Path):
    bundle = package_artifact(cpu_artifact, tmp_path / "tiny-cpu.tar.gz")
    out = compile_artifact(bundle)
    assert out == tmp_path / "tiny-cpu"
    assert load_artifact(out).manifest.engine_file == "model.ort.onnx"


def test_a_portable_plan_level_is_required(cpu_artifact: Path):
    with pytest.raises(ConfigError, match="extended"):
        compile_artifact(cpu_artifact, settings=CompileSettings(optimization="all"))


def test_another_target_is_refused(cpu_artifact: Path, tmp_path: Path):
    with pytest.raises(ArtifactError, match="built for cpu"):
        compile_artifact(cpu_artifact, target="jetson-orin-nx", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_modified_folder_is_refused(cpu_artifact: Path, tmp_path: Path):
    with open(cpu_artifact / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match="checksum"):
        compile_artifact(cpu_artifact, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_without_tensorrt_a_tensorrt_target_names_the_device_step(cpu_artifact: Path, tmp_path: Path):
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    folder = _as_tensorrt(cpu_artifact)
    with pytest.raises(BackendUnavailableError, match="edgekit package .*`edgekit compile"):
        compile_artifact(folder)
    bundle = package_artifact(folder, tmp_path / "nx.tar.gz")
    with pytest.raises(BackendUnavailableError, match="edgekit compile nx.tar.gz"):
        compile_artifact(bundle, out=tmp_path / "dev")
    assert read_manifest(folder).engine_file is None and not (tmp_path / "dev").exists()


def test_engine_settings_follow_options_then_manifest_then_target(cpu_artifact: Path):
    m = read_manifest(_as_tensorrt(cpu_artifact))
    target = load_target("jetson-orin-nx")
    assert engine_settings(m, target, CompileSettings()).workspace_mb == target.workspace_mb
    requested = m.evolve(session={"tensorrt": {"workspace_mb": 512, "dla": True}})
    eng = engine_settings(requested, target, CompileSettings())
    assert (eng.workspace_mb, eng.dla_core, eng.precision) == (512, 0, "fp16")
    eng = engine_settings(requested, target, CompileSettings(workspace_mb=256, dla=False))
    assert (eng.workspace_mb, eng.dla_core) == (256, None)


def test_dla_refuses_fp32(cpu_artifact: Path):
    m = read_manifest(_as_tensorrt(cpu_artifact, precision="fp32"))
    with pytest.raises(ConfigError, match="FP16 or INT8"):
        engine_settings(m, load_target("jetson-orin-nx"), CompileSettings(dla=True))


def test_compile_cli_prints_one_line_and_exits_2_on_bad_input(cpu_artifact: Path, tmp_path: Path, capsys):
    from edgekit.cli.main import main

    assert main(["compile", str(cpu_artifact), "-o", str(tmp_path / "c")]) == 0
    assert "model.ort.onnx" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["engine_file"] == "model.ort.onnx"
    assert main(["compile", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgekit: error:") and len(err.splitlines()) == 1
