"""The runtime a cpu artifact keeps: each of the target's runtimes compiled, verified and timed here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.artifact.folder import load_artifact
from edgekit.artifact.manifest import read_manifest
from edgekit.compile import choice as choice_module
from edgekit.compile.choice import MARGIN, Candidate, RuntimeChoice, choose_runtime
from edgekit.compile.stage import CompileSettings, compile_artifact
from edgekit.convert.report import runtime_text
from edgekit.errors import ArtifactError, BackendUnavailableError, ConfigError
from edgekit.runtime.onnxrt import OnnxRuntimeRunner
from edgekit.runtime.open import open_runner
from edgekit.targets import load_target

ov = pytest.importorskip("openvino")


def _timed(monkeypatch, ms: dict[str, float]) -> list:
    """Known medians instead of the clock (the choice's rule is under test, not the machine)."""
    calls = []

    def fake(work, usable, feed, runs):
        calls.append([c.runtime for c in usable])
        return {c.runtime: ms[c.runtime] for c in usable}

    monkeypatch.setattr(choice_module, "_time_in_turns", fake)
    return calls


def test_the_cpu_target_measures_both_runtimes_and_keeps_one_file(cpu_artifact: Path):
    compile_artifact(cpu_artifact)
    artifact = load_artifact(cpu_artifact)  # sealed with the kept file only
    m = artifact.manifest
    choice = m.session["runtime_choice"]
    assert choice["by"] == "measured" and set(choice["ms"]) == {"onnxruntime", "openvino"}
    assert all(v > 0 for v in choice["ms"].values()) and choice["runs"] == 10 and choice["cpu"]
    assert set(choice["versions"]) == {"onnxruntime", "openvino"} and choice["kept"] == m.backend
    kept, other = ("model.ort.onnx", "model.xml") if m.backend == "onnxruntime" else ("model.xml", "model.ort.onnx")
    assert m.engine_file == kept and not (cpu_artifact / other).exists() and other not in m.files
    assert set(m.session) == {m.backend, "runtime_choice"}  # only the kept runtime's settings
    assert choice["speedup"] == pytest.approx(max(choice["ms"].values()) / choice["ms"][m.backend])


def test_openvino_kept_when_faster_runs_as_infer_opens_it(cpu_artifact: Path, monkeypatch):
    from edgekit.runtime.openvino_rt import OpenVINORunner

    _timed(monkeypatch, {"onnxruntime": 2.0, "openvino": 1.0})
    compile_artifact(cpu_artifact)
    artifact = load_artifact(cpu_artifact)
    m = artifact.manifest
    assert m.backend == "openvino" and m.engine_file == "model.xml" and not (cpu_artifact / "model.ort.onnx").exists()
    assert m.session["openvino"]["precision_hint"] == "f32" and m.session["openvino"]["execution_precision"] == "f32"
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with open_runner(artifact) as runner, OnnxRuntimeRunner(artifact.model_path) as ort:
        assert isinstance(runner, OpenVINORunner) and runner.model.name == "model.xml"
        np.testing.assert_allclose(runner.infer({"input": x})["logits"], ort.infer({"input": x})["logits"],
                                   rtol=1e-4, atol=1e-4)
    text = runtime_text(m.session["runtime_choice"])
    assert text.startswith("runtime OpenVINO") and "1.0 ms against ONNX Runtime" in text and "(2.00x)" in text


@pytest.mark.parametrize("ms, kept", [({"onnxruntime": 1.04, "openvino": 1.0}, "onnxruntime"),
                                      ({"onnxruntime": 1.06, "openvino": 1.0}, "openvino"),
                                      ({"onnxruntime": 1.0, "openvino": 1.5}, "onnxruntime")])
def test_the_first_runtime_is_kept_unless_another_is_faster_by_the_margin(monkeypatch, ms, kept):
    assert MARGIN == 1.05
    calls = _timed(monkeypatch, ms)
    candidates = [Candidate("onnxruntime", manifest=object()), Candidate("openvino", manifest=object())]
    choice = choose_runtime(Path("."), candidates, {}, "standard normal", 10, 0)
    assert choice.kept == kept and choice.by == "measured" and calls == [["onnxruntime", "openvino"]]
    assert RuntimeChoice.from_dict(choice.to_dict()) == choice


def test_a_runtime_that_cannot_be_used_is_named_and_nothing_is_timed(cpu_artifact: Path, monkeypatch):
    import edgekit.runtime.openvino_rt as ov_rt

    def missing():
        raise BackendUnavailableError("OpenVINO is not installed: pip install 'edgekit[openvino]'")

    monkeypatch.setattr(ov_rt, "import_openvino", missing)
    calls = _timed(monkeypatch, {})
    compile_artifact(cpu_artifact)
    m = read_manifest(cpu_artifact)
    choice = m.session["runtime_choice"]
    assert m.backend == "onnxruntime" and choice["by"] == "only usable" and calls == []
    assert choice["unusable"] == {"openvino": "OpenVINO is not installed: pip install 'edgekit[openvino]'"}
    assert "OpenVINO not usable here: OpenVINO is not installed" in runtime_text(choice)


def test_nothing_usable_raises_the_first_runtimes_error(cpu_artifact: Path, tmp_path: Path, monkeypatch):
    from edgekit.compile import check as check_module

    monkeypatch.setitem(check_module.BUDGETS, "fp32", {k: check_module.Budget(abs=-1.0) for k in check_module.KINDS})
    with pytest.raises(Exception) as caught:
        compile_artifact(cpu_artifact, out=tmp_path / "c")
    assert "ONNX Runtime plan" in str(caught.value) and not (tmp_path / "c").exists()


def test_a_pinned_runtime_is_not_measured_and_stays_pinned_on_recompile(cpu_artifact: Path, monkeypatch):
    calls = _timed(monkeypatch, {"onnxruntime": 1.0, "openvino": 9.0})
    compile_artifact(cpu_artifact, settings=CompileSettings(runtime="openvino"))
    m = read_manifest(cpu_artifact)
    assert m.backend == "openvino" and m.target == "cpu" and m.session["runtime_choice"]["by"] == "pinned"
    compile_artifact(cpu_artifact)  # the pin is the artifact's: ONNX Runtime's faster figure does not undo it
    m = read_manifest(cpu_artifact)
    assert m.backend == "openvino" and m.engine_file == "model.xml" and calls == []
    assert runtime_text(m.session["runtime_choice"]).endswith("pinned by --runtime (not measured)")
    compile_artifact(cpu_artifact, settings=CompileSettings(runtime="onnxruntime"))  # re-pinned by the option
    assert read_manifest(cpu_artifact).engine_file == "model.ort.onnx"


def test_targets_list_and_pin_their_runtimes(tmp_path: Path):
    cpu = load_target("cpu")
    assert cpu.choices == ("onnxruntime", "openvino") and not cpu.pinned
    assert load_target("cpu-openvino").choices == ("openvino",)
    pinned = cpu.with_runtime("openvino")
    assert pinned.choices == ("openvino",) and pinned.pinned and pinned.cpu_runtime == "openvino"
    with pytest.raises(ConfigError, match="--runtime is for cpu targets"):
        load_target("jetson-orin-nx").with_runtime("openvino")
    with pytest.raises(ConfigError, match="choose one of onnxruntime, openvino"):
        cpu.with_runtime("tflite")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: cpu\nbackend: onnxruntime\nruntimes: [onnxruntime, tensorrt]\n")
    with pytest.raises(ConfigError, match="runtimes are for cpu targets"):
        load_target(bad)


def test_a_manifest_backend_outside_the_targets_runtimes_is_refused(cpu_artifact: Path):
    from edgekit.artifact.manifest import seal

    seal(cpu_artifact, read_manifest(cpu_artifact).evolve(target="cpu-openvino", backend="onnxruntime"))
    with pytest.raises(ArtifactError, match="uses openvino, the manifest says onnxruntime"):
        compile_artifact(cpu_artifact)


def test_build_records_both_figures_and_runtime_pins_it(tiny_recipe, tmp_path: Path, capsys, monkeypatch):
    import json

    from edgekit.cli.main import main

    _timed(monkeypatch, {"onnxruntime": 3.0, "openvino": 1.5})
    assert main(["build", str(tiny_recipe), "-o", str(tmp_path / "auto"), "--latency-runs", "0"]) == 0
    said = capsys.readouterr().out
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    compiled = report["stages"][-1]
    assert compiled["stage"] == "compile (openvino)" and compiled["latency_ms"] == 1.5
    assert compiled["metrics"]["onnxruntime_ms"] == 3.0 and compiled["metrics"]["openvino_ms"] == 1.5
    assert report["details"]["runtime"]["kept"] == "openvino" and "(2.00x)" in compiled["facts"]["runtime"]
    assert "runtime OpenVINO" in said and "ONNX Runtime" in said
    assert "runtime OpenVINO" in (tmp_path / "auto" / "report.md").read_text()
    assert main(["build", str(tiny_recipe), "-o", str(tmp_path / "ort"), "--latency-runs", "0",
                 "--runtime", "onnxruntime"]) == 0
    m = read_manifest(tmp_path / "ort")
    assert m.backend == "onnxruntime" and m.target == "cpu" and m.session["runtime_choice"]["by"] == "pinned"
    assert "pinned by --runtime" in capsys.readouterr().out
    assert main(["build", str(tiny_recipe), "-o", str(tmp_path / "trt"), "--target", "jetson-orin-nx",
                 "--runtime", "openvino"]) == 2
    assert "--runtime is for cpu targets" in capsys.readouterr().err


@pytest.mark.parametrize("faster, flavor, zero_dtype", [("openvino", "openvino", "int8"), ("onnxruntime", "onnxruntime", "uint8")])
def test_int8_is_placed_for_each_runtime_and_the_kept_ones_graph_deployed(tiny_recipe, tmp_path: Path, monkeypatch,
                                                                        faster, flavor, zero_dtype):
    import json

    from edgekit.convert.pipeline import BuildConfig, build
    from tests.convert.test_openvino_int8 import placement
    from tests.convert.test_precision import smooth_images

    _timed(monkeypatch, {"onnxruntime": 1.0 if faster == "onnxruntime" else 2.0, "openvino": 1.0 if faster == "openvino" else 2.0})
    calib = smooth_images(tmp_path / "calib", 10, size=64)
    folder = build(str(tiny_recipe), tmp_path / "int8", BuildConfig(precision="int8", calib=calib, calib_samples=6,
                                                                  latency_runs=0)).folder
    m = load_artifact(folder).manifest
    assert m.backend == faster and not (folder / "model.openvino.onnx").exists() and set(m.files) >= {"model.onnx"}
    assert m.source["precision"]["flavor"] == flavor and m.source["precision"]["path"] == "model.onnx"
    dtypes, _, zero, _ = placement(folder / "model.onnx")
    assert dtypes == {zero_dtype} and zero == (flavor == "openvino")
    if faster == "openvino":  # its IR checked against its graph on OpenVINO, which verified that graph
        assert m.session["openvino"]["verification"]["reference"] == "the deployable ONNX on OpenVINO"
    stages = [s["stage"] for s in json.loads((folder / "report.json").read_text())["stages"]]
    assert "precision int8" in stages and "precision int8 (openvino)" in stages


def test_a_runtime_failing_its_check_leaves_no_compiled_file(cpu_artifact: Path, monkeypatch):
    """OpenVINO saves its IR before checking it: an IR off budget is not kept in the sealed folder."""
    import edgekit.runtime.openvino_rt as ov_rt

    infer = ov_rt.OpenVINORunner.infer
    monkeypatch.setattr(ov_rt.OpenVINORunner, "infer", lambda self, feed: {k: v * 1.5 for k, v in infer(self, feed).items()})
    compile_artifact(cpu_artifact)
    m = load_artifact(cpu_artifact).manifest
    assert m.backend == "onnxruntime" and "differs" in m.session["runtime_choice"]["unusable"]["openvino"]
    assert not (cpu_artifact / "model.xml").exists() and not (cpu_artifact / "model.bin").exists()
    assert set(m.files) & {"model.xml", "model.bin"} == set()


def test_int8_slower_on_one_runtime_is_not_the_closing_word_when_another_is_kept(tiny_recipe, tmp_path: Path,
                                                                                  monkeypatch):
    """ONNX Runtime's int8 timed slower than fp32 (injected), OpenVINO's int8 kept: the build does not
    close on "int8 is slower than fp32"; the precision record still says it of ONNX Runtime's graph."""
    import json

    from edgekit.convert import pipeline
    from edgekit.convert.pipeline import BuildConfig, build
    from tests.convert.test_precision import smooth_images

    monkeypatch.setattr(pipeline, "_onnx_latency",
                        lambda path, runs, target, precision="fp32": 12.0 if Path(path).name == "model.onnx" else 10.0)
    _timed(monkeypatch, {"onnxruntime": 2.0, "openvino": 1.0})
    calib = smooth_images(tmp_path / "calib", 10, size=64)
    result = build(str(tiny_recipe), tmp_path / "int8", BuildConfig(precision="int8", calib=calib, calib_samples=6,
                                                                    latency_runs=1))
    assert result.manifest.backend == "openvino"
    assert "int8_slower" not in json.loads((tmp_path / "int8" / "report.json").read_text())["details"]
    record = next(s for s in result.report.stages if s.stage == "precision int8")
    assert "int8 is slower than fp32" in record.facts["int8_slower"]


def test_the_kept_runtimes_int8_slower_than_fp32_on_it_is_the_closing_word(tiny_recipe, tmp_path: Path, monkeypatch):
    """OpenVINO kept, its own int8 graph timed slower than the FP32 graph on OpenVINO (injected, as
    on a CPU without VNNI: 174 against 156 ms for the demo): the build closes on it, naming the
    runtime and what builds the faster artifact."""
    import json

    from edgekit.convert import pipeline
    from edgekit.convert.pipeline import BuildConfig, build
    from tests.convert.test_precision import smooth_images

    def latency(path, runs, target, precision="fp32"):
        return {"model.onnx": 8.0, "model.openvino.onnx": 15.0}.get(Path(path).name, 10.0)

    monkeypatch.setattr(pipeline, "_onnx_latency", latency)
    _timed(monkeypatch, {"onnxruntime": 2.0, "openvino": 1.0})
    calib = smooth_images(tmp_path / "calib", 10, size=64)
    result = build(str(tiny_recipe), tmp_path / "int8", BuildConfig(precision="int8", calib=calib, calib_samples=6,
                                                                    latency_runs=1))
    assert result.manifest.backend == "openvino"
    note = json.loads((tmp_path / "int8" / "report.json").read_text())["details"]["int8_slower"]
    assert note["runtime"] == "openvino" and (note["int8_ms"], note["fp32_ms"]) == (15.0, 10.0)
    assert "OpenVINO" in note["message"] and "--precision fp32" in note["message"]
    record = next(s for s in result.report.stages if s.stage == "precision int8 (openvino)")
    assert "int8 is slower than fp32" in record.facts["int8_slower"]
