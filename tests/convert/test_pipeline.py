"""`edgekit build` end to end on tiny recipes: artifacts, reports, errors, nothing half-written."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import squeeze_excited, tiny_segmenter_onnx
from edgekit.convert.pipeline import BuildConfig, build
from edgekit.convert.report import parity_text
from edgekit.errors import CalibrationError, ConfigError, SourceError
from edgekit.artifact.folder import load_artifact
from edgekit.runtime.open import open_runner


def _lenient_target(folder: Path, backend: str = "onnxruntime") -> Path:
    """A cpu target that tolerates any accuracy drop: random weights make argmax near-ties."""
    path = folder / "lenient.yaml"
    data = {"name": "lenient", "kind": "cpu", "backend": backend, "max_accuracy_drop": 100.0}
    if backend == "tensorrt":
        data.update(kind="jetson", compute_capability="8.7", tensorrt="10.3", dla_cores=0)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def calib_folder(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def test_fp32_build_is_a_complete_verified_artifact(tiny_recipe, tmp_path, monkeypatch):
    import edgekit.artifact.manifest as manifest_module

    writes = []
    write = manifest_module.write_manifest
    monkeypatch.setattr(manifest_module, "write_manifest", lambda folder, m: writes.append(m) or write(folder, m))
    out = tmp_path / "fp32"
    # runtime pinned: unpinned, the cpu target keeps whichever runtime times faster (tests/compile/test_choice.py)
    result = build(str(tiny_recipe), out, BuildConfig(latency_runs=1, runtime="onnxruntime"))
    assert result.complete
    assert len(writes) == 1 and writes[0] == result.manifest  # sealed once, after every file was written
    artifact = load_artifact(out)
    assert artifact.manifest.engine_file == "model.ort.onnx"
    assert artifact.manifest.inputs[0].shape == (1, 3, 64, 64)
    assert artifact.manifest.source["sha256"]
    stages = [s.stage for s in result.report.stages]
    assert stages[:4] == ["source", "reparam", "export", "simplify"] and stages[-1].startswith("compile")
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "complete"
    _assert_numbers(report["stages"])
    assert "max rel" not in (out / "report.json").read_text()  # prose only in report.md
    md = (out / "report.md").read_text()
    assert "| reparam |" in md and md.count("max rel") >= 3 and "opset" in md
    assert not list(tmp_path.glob(".*partial"))
    with open_runner(artifact) as runner:
        out_map = runner.infer({"input": np.zeros((1, 3, 64, 64), np.float32)})
    assert next(iter(out_map.values())).shape == (1, 3, 64, 64)


def test_int8_build_for_cpu_has_qdq_and_a_verification(tiny_recipe, calib_folder, tmp_path):
    import onnx

    out = tmp_path / "int8"
    config = BuildConfig(target=str(_lenient_target(tmp_path)), precision="int8", calib=calib_folder,
                         calib_samples=4, latency_runs=0)
    result = build(str(tiny_recipe), out, config)
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    precision = [s for s in result.report.stages if s.stage == "precision int8"][0]
    assert "agree" in parity_text(precision) and "random weights" in parity_text(precision)
    stored = [s for s in json.loads((out / "report.json").read_text())["stages"] if s["stage"] == "precision int8"][0]
    m = stored["metrics"]
    assert isinstance(m["agreement"], float) and 0 <= m["agreement"] <= 1 and isinstance(m["miou"], float)
    assert isinstance(m["drop"], float) and m["images"] == 6 and m["enforced"] is False
    assert isinstance(m["qdq_pairs"], int) and m["qdq_pairs"] > 0 and m["calib_images"] == 4
    assert stored["facts"]["flavor"] == "onnxruntime"
    assert result.manifest.source["precision"]["check"]["images"] == 6  # the 6 images calibration never saw


def _assert_numbers(stages: list[dict]) -> None:
    """report.json keeps every stage's figures as numbers a program can compare."""
    by_name = {s["stage"]: s for s in stages}
    for name in ("reparam", "export", "simplify"):
        m = by_name[name]["metrics"]
        assert isinstance(m["max_abs"], float) and isinstance(m["max_rel"], float) and 0 <= m["max_rel"] <= 1e-3
    assert isinstance(by_name["export"]["metrics"]["opset"], int) and by_name["export"]["metrics"]["opset"] >= 17
    simplify = by_name["simplify"]["metrics"]
    # counts, not a promise of fewer nodes: onnxslim turns a 4-D MatMul + Add into Reshape, Gemm, Reshape
    # (the dynamo exporter's graph of the tiny ConvNeXt: 221 -> 239 nodes, TorchScript's: 336 -> 248)
    assert all(isinstance(simplify[k], int) and simplify[k] > 0 for k in ("nodes_before", "nodes_after"))
    assert by_name["reparam"]["metrics"]["params_after"] <= by_name["reparam"]["metrics"]["params_before"]
    compiled = stages[-1]
    assert isinstance(compiled["metrics"]["max_abs"], float) and compiled["facts"]["file"] == "model.ort.onnx"
    assert all(isinstance(s["latency_ms"], float) for s in stages[:-1])


def test_tensorrt_target_without_tensorrt_stops_with_deployable_onnx(tiny_recipe, tmp_path):
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here: the build goes on to compile")
    except ImportError:
        pass
    out = tmp_path / "nx"
    result = build(str(tiny_recipe), out, BuildConfig(target="jetson-orin-nx", latency_runs=0))
    assert not result.complete
    assert result.report.next_step == f"edgekit compile {out}"
    m = load_artifact(out).manifest
    assert m.backend == "tensorrt" and m.engine_file is None
    assert "engine not built" in (out / "report.md").read_text()


def test_onnx_source_skips_torch_stages(tmp_path):
    model = tiny_segmenter_onnx(tmp_path / "vendor.onnx", size=32)
    result = build(str(model), tmp_path / "v", BuildConfig(task="segmentation", latency_runs=0))
    assert [s.stage for s in result.report.stages][:2] == ["source", "simplify"]  # no reparam, no export
    assert result.manifest.task == "segmentation"
    assert result.report.details["context"]["global"] is False


def test_the_report_says_a_graph_reads_its_whole_tile(tmp_path):
    model = squeeze_excited(tiny_segmenter_onnx(tmp_path / "se.onnx", size=32))
    result = build(str(model), tmp_path / "v", BuildConfig(task="segmentation", latency_runs=0))
    context = result.report.details["context"]
    assert context["global"] is True and context["pooling"] == {"GlobalAveragePool": 1}
    assert "Context: global (1 GlobalAveragePool)" in (tmp_path / "v" / "report.md").read_text()


@pytest.mark.parametrize("source, config, error, match", [
    ("no_such_recipe", BuildConfig(), ConfigError, "unknown recipe"),
    ("timm:mobileone_s9", BuildConfig(), SourceError, "did you mean"),
    ("fastvit_sa12_fpn", BuildConfig(input_size=(500, 500)), ConfigError, "not divisible"),
    ("fastvit_sa12_fpn", BuildConfig(target="jetson-nano-x"), ConfigError, "choose one of"),
    ("fastvit_sa12_fpn", BuildConfig(precision="int8"), ConfigError, "needs a calibration set"),
    ("missing.onnx", BuildConfig(), SourceError, "does not exist"),
    ("nomodule_xyz:make", BuildConfig(input_size=(64, 64)), SourceError, "cannot import"),
])
def test_bad_sources_and_options_are_clear_errors(tmp_path, source, config, error, match):
    with pytest.raises(error, match=match):
        build(source, tmp_path / "x", config)
    assert not (tmp_path / "x").exists()


def test_too_few_calibration_images_leave_nothing(tiny_recipe, calib_folder, tmp_path):
    config = BuildConfig(precision="int8", calib=calib_folder, calib_samples=50, latency_runs=0)
    with pytest.raises(CalibrationError, match="50"):
        build(str(tiny_recipe), tmp_path / "y", config)
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob(".y.*"))


def test_mismatched_checkpoint_is_named(tiny_recipe, tmp_path):
    import torch

    ckpt = tmp_path / "bad.pt"
    torch.save({"head.classifier.weight": torch.zeros(1)}, ckpt)
    with pytest.raises(SourceError, match="missing"):
        build(str(tiny_recipe), tmp_path / "z", BuildConfig(checkpoint=ckpt, latency_runs=0))


def test_random_weight_sources_are_reproducible(tiny_recipe):
    import torch

    from edgekit.convert.source import resolve_source

    a, b = (resolve_source(str(tiny_recipe)).load_model() for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_int8_slower_than_fp32_on_cpu_says_so(tiny_recipe, calib_folder, tmp_path, monkeypatch):
    """Injected stage timings: the int8 graph 12 ms, the fp32 graph it came from 10 ms."""
    import onnxruntime

    from edgekit.convert import pipeline

    monkeypatch.setattr(pipeline, "_onnx_latency", lambda path, runs, target, precision="fp32": 12.0 if Path(path).name == "model.onnx" else 10.0)
    said = []
    config = BuildConfig(target=str(_lenient_target(tmp_path)), precision="int8", calib=calib_folder,
                         calib_samples=4, latency_runs=1)
    result = build(str(tiny_recipe), tmp_path / "int8", config, progress=said.append)
    note = json.loads((tmp_path / "int8" / "report.json").read_text())["details"]["int8_slower"]
    assert (note["fp32_ms"], note["int8_ms"]) == (10.0, 12.0)
    assert note["message"] in said
    assert "12.0 ms vs 10.0 ms (0.83x)" in note["message"] and f"ONNX Runtime {onnxruntime.__version__}" in note["message"]
    assert note["cpu"].split(",")[0] in note["message"] and ("VNNI" in note["message"])
    assert note["message"] == result.report.stages[-2].facts["int8_slower"]  # the precision row, before compile


def test_int8_faster_than_fp32_has_no_note():
    from edgekit.convert.pipeline import int8_slower_note

    assert int8_slower_note(10.0, 8.0) is None
    assert int8_slower_note(10.0, 10.5)["int8_ms"] == 10.5


def test_fp32_report_records_both_exporters(tiny_recipe, tmp_path):
    result = build(str(tiny_recipe), tmp_path / "fp32", BuildConfig(latency_runs=0))
    export = json.loads((tmp_path / "fp32" / "report.json").read_text())["details"]["export"]
    assert export["chosen"] in ("dynamo", "torchscript")
    timed = [c for c in export["candidates"].values() if c["latency_ms"] is not None]
    assert len(timed) == len(export["candidates"]) == 2
    assert export["candidates"][export["chosen"]]["latency_ms"] == min(c["latency_ms"] for c in timed)
    assert export["chosen"] == next(s.facts["exporter"] for s in result.report.stages if s.stage == "export")


def test_openvino_target_times_verifies_and_compiles_on_openvino(tiny_recipe, calib_folder, tmp_path, monkeypatch):
    """cpu-openvino: exporters timed on OpenVINO, int8 checked on held-out images run by OpenVINO's
    own kernels, an IR compiled and verified, and every other stage left to the shared path."""
    pytest.importorskip("openvino")
    import edgekit.convert.verify_precision as verify_module
    from edgekit.runtime.openvino_rt import OpenVINORunner

    runtimes = []
    real = verify_module.cpu_runner
    monkeypatch.setattr(verify_module, "cpu_runner",
                        lambda path, threads=0, runtime="onnxruntime", precision="fp32": runtimes.append(runtime) or real(path, threads, runtime, precision))
    out = tmp_path / "ov"
    config = BuildConfig(target=str(_lenient_target(tmp_path, "openvino")), precision="int8", calib=calib_folder,
                         calib_samples=4, latency_runs=1)
    result = build(str(tiny_recipe), out, config)
    assert result.complete and runtimes == ["onnxruntime", "openvino"]  # reference on ORT, candidate on OpenVINO
    report = json.loads((out / "report.json").read_text())
    assert report["details"]["export"]["chosen_by"] == "faster on OpenVINO CPU (interleaved medians)"
    compiled = report["stages"][-1]
    assert compiled["stage"] == "compile (openvino)" and compiled["facts"]["file"] == "model.xml"
    artifact = load_artifact(out)
    assert artifact.manifest.session["openvino"]["verification"]["reference"] == "the deployable ONNX on OpenVINO"
    with open_runner(artifact) as runner:
        assert isinstance(runner, OpenVINORunner)
        assert runner.infer({"input": np.zeros((1, 3, 64, 64), np.float32)})["logits"].shape == (1, 3, 64, 64)


def test_a_cpu_target_cannot_name_tensorrt(tmp_path):
    from edgekit.targets import load_target

    path = tmp_path / "odd.yaml"
    path.write_text(yaml.safe_dump({"name": "odd", "kind": "cpu", "backend": "tensorrt"}))
    with pytest.raises(ConfigError, match="a cpu target cannot use tensorrt"):
        load_target(str(path))


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_a_trained_model_without_held_out_images_asks_for_them(tmp_path, calib_folder, capsys, precision):
    """All 10 calibration images calibrate and there is no calib_val: nothing would check the lowering."""
    from edgekit.cli.main import main

    model = tiny_segmenter_onnx(tmp_path / "vendor.onnx", size=32)
    args = ["build", str(model), "--task", "segmentation", "--precision", precision, "--calib", str(calib_folder),
            "--latency-runs", "0", "-o", str(tmp_path / "v")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgekit: error:") and "\n" not in err
    assert "--val FOLDER" in err and "--no-verify" in err and "Config(" not in err
    assert not (tmp_path / "v").exists()


def test_no_verify_builds_a_trained_int8_marked_unverified(tmp_path, calib_folder, capsys):
    from edgekit.artifact.manifest import read_manifest
    from edgekit.cli.main import main

    model = tiny_segmenter_onnx(tmp_path / "vendor.onnx", size=32)
    out = tmp_path / "v"
    assert main(["build", str(model), "--task", "segmentation", "--precision", "int8", "--calib", str(calib_folder),
                 "--no-verify", "--latency-runs", "0", "-o", str(out)]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "unverified" in line]
    assert len(said) == 1 and said[0].startswith("edgekit: warning:") and "--val" in said[0]
    precision = read_manifest(out).source["precision"]
    assert precision["verified"] is False and precision["check"] is None
    assert [a["passed"] for a in precision["attempts"]] == [None]
    stage = next(s for s in json.loads((out / "report.json").read_text())["stages"] if s["stage"] == "precision int8")
    assert stage["metrics"]["verified"] is False and "unverified" in stage["facts"]["basis"]
    assert "unverified" in (out / "report.md").read_text()


def test_random_weights_without_held_out_images_build_unverified_and_say_so(tiny_recipe, calib_folder, tmp_path):
    said = []
    config = BuildConfig(precision="int8", calib=calib_folder, latency_runs=0)  # all 10 images calibrate
    result = build(str(tiny_recipe), tmp_path / "r", config, progress=said.append)
    stage = next(s for s in result.report.stages if s.stage == "precision int8")
    assert stage.metrics["verified"] is False and "unverified" in stage.facts["warning"]
    assert result.manifest.source["precision"]["verified"] is False
    checked = build(str(tiny_recipe), tmp_path / "c", BuildConfig(target=str(_lenient_target(tmp_path)), precision="int8",
                                                                   calib=calib_folder, calib_samples=4, latency_runs=0))
    stage = next(s for s in checked.report.stages if s.stage == "precision int8")
    assert stage.metrics["verified"] is True and "warning" not in stage.facts


def test_a_compile_fallback_in_a_build_is_one_line_and_in_the_report(tiny_recipe, calib_folder, tmp_path, capsys,
                                                                      monkeypatch):
    """The int8 plan's fused integer kernels held to fp32's budget: the build's compile stage falls
    back to the unfused level by itself, says so once, and the report carries the figures."""
    from edgekit.cli.main import main
    from edgekit.compile import check

    monkeypatch.setitem(check.BUDGETS, "int8", check.BUDGETS["fp32"])
    out = tmp_path / "int8"
    assert main(["build", str(tiny_recipe), "--target", str(_lenient_target(tmp_path)), "--precision", "int8",
                 "--calib", str(calib_folder), "--calib-samples", "4", "--latency-runs", "0", "-o", str(out)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("edgekit: warning:")]
    assert len(warned) == 1 and "saved at level basic" in warned[0]
    stage = json.loads((out / "report.json").read_text())["stages"][-1]
    assert stage["facts"]["warning"] == warned[0].removeprefix("edgekit: warning: ")
    assert "6 held-out images" in stage["facts"]["basis"] and "plan level basic" in stage["facts"]["basis"]
    assert stage["metrics"]["holds"] is True and stage["metrics"]["max_abs"] == 0.0
    assert "plan level basic" in (out / "report.md").read_text()
    assert load_artifact(out).manifest.session["onnxruntime"]["optimization"] == "basic"


@pytest.mark.parametrize("pixels, layout", [(False, "yolox"), (True, "yolov5")])
def test_the_build_decides_anchor_free_rows_from_their_values_and_infer_reads_its_choice(tmp_path, pixels, layout):
    """YOLOX's raw head and YOLOv6-style boxes in pixels have the same shape (one row per grid cell):
    the build runs the graph, records the layout in the manifest, and infer finds the same box."""
    from edgekit.detect.execute import DetectConfig, detect_image
    from tests.detect.detect_fixtures import anchor_free_finder_onnx

    from edgekit.preprocess import InputOptions

    onnx_path = anchor_free_finder_onnx(tmp_path / "head.onnx", pixels=pixels)
    declared = InputOptions(mean=(0.0,) * 3, std=(1.0,) * 3, channel_order="RGB")  # pixels / 255
    out = build(str(onnx_path), tmp_path / "det", BuildConfig(precision="fp32", latency_runs=0, inputs=declared)).folder
    manifest = load_artifact(out).manifest
    assert manifest.task == "detection" and manifest.output["det_format"] == layout
    image = np.full((64, 64, 3), 20, np.uint8)
    image[40:48, 16:24] = 255  # fills the stride-8 cell (2, 5) of the tile at (0, 32)
    np.save(tmp_path / "img.npy", image)
    found = []
    detect_image(out, tmp_path / "img.npy", found.append, DetectConfig(overlap=16, conf=0.5))  # seams: one box
    boxes = np.concatenate([d.boxes for d in found])
    np.testing.assert_allclose(boxes, [[16, 40, 24, 48]], atol=1e-3)


def test_a_build_asked_not_to_fuse_keeps_the_plain_graph(tmp_path):
    """`edgekit optimize` lowers fp16 and int8 from its FP32 build's graph, and AutoCast cannot take
    ONNX Runtime's fused contrib ops: that build asks for no fusion, even on an attention graph."""
    import onnx
    from onnx import TensorProto, helper

    from edgekit.convert.fuse import has_attention
    from edgekit.convert.pipeline import _fuse
    from edgekit.targets import load_target

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4])
    nodes = [helper.make_node("MatMul", ["x", "x"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "x"], ["y"])]
    path = tmp_path / "attention.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)]), path)
    assert has_attention(onnx.load(str(path)))
    details, records = {}, []
    kept = _fuse(path, tmp_path, BuildConfig(fuse=False), records, lambda _m: None, load_target("cpu"), details)
    assert kept == path and records == [] and "skipped" in details["fuse"]
