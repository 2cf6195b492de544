"""What a model says about itself (ONNX metadata, timm, torchvision, safetensors) and the input a
build feeds it: options over recipe over model over an assumption, each value with its source."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli.main import main
from edgekit.convert.contract import (ContractWarning, ModelContract, contract_from_onnx, contract_from_safetensors,
                                      contract_from_timm, contract_from_torchvision, input_preprocess, outputs_at)
from edgekit.errors import ConfigError
from edgekit.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputOptions, Preprocess
from tests.conftest import tiny_segmenter_onnx

ULTRALYTICS_META = {"author": "Ultralytics", "imgsz": "[64, 64]", "stride": "32", "task": "detect",
                    "names": "{0: 'person', 2: 'car', 1: 'bicycle'}", "batch": "1"}


def with_metadata(path: Path, meta: dict[str, str]) -> Path:
    import onnx

    model = onnx.load(str(path))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.fixture
def ultralytics_onnx(tmp_path) -> Path:
    return with_metadata(tiny_segmenter_onnx(tmp_path / "yolo.onnx", size=64), ULTRALYTICS_META)


@pytest.fixture
def plain_onnx(tmp_path) -> Path:
    return tiny_segmenter_onnx(tmp_path / "plain.onnx", size=32)


def test_ultralytics_metadata_is_read_with_its_source(ultralytics_onnx):
    c = contract_from_onnx(ultralytics_onnx)
    assert (c.mean, c.std, c.channel_order) == ((0.0,) * 3, (1.0,) * 3, "RGB")
    assert c.task == "detection" and c.task_word == "detect" and "Ultralytics" in c.task_source
    assert c.classes == ("person", "bicycle", "car")  # in class-id order, not the text's
    assert c.stride == 32 and c.channels == 3 and c.input_size == (64, 64)
    assert "Ultralytics" in c.source_of("mean") and c.source_of("channels") == "ONNX input shape"
    assert c.inputs[0]["name"] == "input" and c.outputs[0]["shape"] == (1, 3, 64, 64)
    assert dict(c.metadata)["author"] == "Ultralytics"


@pytest.mark.parametrize("word, task", [("segment", None), ("classify", "classification"), ("pose", None)])
def test_ultralytics_task_words_map_to_edgekit_tasks_or_to_none_with_a_note(tmp_path, word, task):
    path = with_metadata(tiny_segmenter_onnx(tmp_path / "m.onnx"), ULTRALYTICS_META | {"task": word})
    c = contract_from_onnx(path)
    assert c.task == task and c.task_word == word
    assert bool(c.notes) == (task is None)


def test_metadata_is_parsed_as_literals_never_evaluated(tmp_path):
    path = with_metadata(tiny_segmenter_onnx(tmp_path / "m.onnx"),
                         ULTRALYTICS_META | {"names": "__import__('os').getcwd()", "imgsz": "__import__('os')"})
    c = contract_from_onnx(path)
    assert c.classes == ("__import__('os').getcwd()",)  # kept as text: nothing ran
    assert c.input_size == (64, 64)  # the graph's own shape, not the unreadable imgsz


def test_ultralytics_imgsz_sizes_a_dynamic_input(tmp_path):
    from tests.convert.test_onnx_source import _graph

    path = with_metadata(_graph(tmp_path / "dyn.onnx"), ULTRALYTICS_META | {"imgsz": "[48, 32]"})
    c = contract_from_onnx(path)
    assert c.input_size == (48, 32) and "Ultralytics" in c.source_of("input_size")


def dynamic_yolo_onnx(path: Path) -> Path:
    """A YOLOv8-layout graph on a (batch, 3, height, width) input, as Ultralytics exports it with
    dynamic axes: its one output (batch, 5, n) declares n as a formula of height and width."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.full((5, 3, 1, 1), 0.1, np.float32), "w")
    shape = numpy_helper.from_array(np.array([0, 5, -1], np.int64), "shape")
    nodes = [helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["pooled", "w"], ["head"], kernel_shape=[1, 1]),
             helper.make_node("Reshape", ["head", "shape"], ["output0"])]
    graph = helper.make_graph(
        nodes, "dynamic_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 5, "floor(height/2)*floor(width/2)"])],
        [weight, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_symbolic_output_sizes_are_inferred_at_a_pinned_input(tmp_path):
    path = dynamic_yolo_onnx(tmp_path / "dyn.onnx")
    assert contract_from_onnx(path).outputs[0]["shape"][2] == "floor(height/2)*floor(width/2)"  # as declared
    assert outputs_at(path, (64, 48)) == ({"name": "output0", "shape": (1, 5, 32 * 24)},)
    assert outputs_at(path, (64, 48), batch=2)[0]["shape"] == (2, 5, 32 * 24)


def test_generic_metadata_keys_and_pixel_unit_means(tmp_path):
    path = with_metadata(tiny_segmenter_onnx(tmp_path / "m.onnx"),
                         {"mean": "123.675 116.28 103.53", "std": "[0.229, 0.224, 0.225]", "labels": "sea,land,lake",
                          "channel_order": "bgr", "task": "segmentation"})
    c = contract_from_onnx(path)
    np.testing.assert_allclose(c.mean, IMAGENET_MEAN, atol=1e-6)
    assert "divided by 255" in c.source_of("mean") and c.std == IMAGENET_STD
    assert c.classes == ("sea", "land", "lake") and c.channel_order == "BGR" and c.task == "segmentation"


def test_a_plain_onnx_says_only_its_shape(plain_onnx):
    c = contract_from_onnx(plain_onnx)
    assert c.normalisation() == {} and c.task is None and c.classes == ()
    assert set(c.stated()) == {"channels", "input_size"}


def test_timm_pretrained_cfg_is_read_without_a_download():
    c = contract_from_timm("vit_small_patch16_224")
    assert c.mean == (0.5, 0.5, 0.5) and c.std == (0.5, 0.5, 0.5)  # not ImageNet's: read, not assumed
    assert c.input_size == (224, 224) and c.interpolation == "bicubic"
    assert c.source_of("mean").startswith("timm pretrained_cfg of vit_small_patch16_224")
    assert contract_from_timm("fastvit_sa12").input_size == (256, 256)


def test_timm_source_takes_its_size_and_normalisation_from_timm():
    from edgekit.convert.source import resolve_source

    src = resolve_source("timm:vit_small_patch16_224")
    pre = src.recipe.preprocess
    assert pre.mean == (0.5, 0.5, 0.5) and not pre.assumed and "pretrained_cfg" in pre.source_of("std")
    assert resolve_source("timm:fastvit_sa12").recipe.input_size == (256, 256)


def test_torchvision_weights_enum_gives_transforms_and_categories():
    pytest.importorskip("torchvision")
    c = contract_from_torchvision("torchvision.models:resnet18", "IMAGENET1K_V1")
    assert c.mean == IMAGENET_MEAN and c.std == IMAGENET_STD and c.input_size == (224, 224)
    assert len(c.classes) == 1000 and c.classes[0] == "tench"
    assert "ResNet18_Weights.IMAGENET1K_V1" in c.source_of("classes")
    with pytest.raises(ConfigError, match="weights=DEFAULT"):
        contract_from_torchvision("torchvision.models:resnet18", "NO_SUCH_WEIGHTS")


def test_safetensors_metadata_is_read_from_the_header(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(path),
              metadata={"mean": "[0.1, 0.2, 0.3, 0.4]", "std": "0.5,0.5,0.5,0.5", "classes": "['tree']"})
    c = contract_from_safetensors(path)
    assert c.mean == (0.1, 0.2, 0.3, 0.4) and c.std == (0.5,) * 4 and c.classes == ("tree",)
    assert c.source_of("mean") == "w.safetensors metadata 'mean'"


# ---- the input a build uses ------------------------------------------------------------------------
def _resolve(contract, declared=None, options=InputOptions(), imagenet=False):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pre = input_preprocess("m.onnx", contract, declared, options, imagenet)
    return pre, [str(w.message) for w in caught if w.category is ContractWarning]


def test_nothing_declared_is_assumed_with_one_warning_naming_the_options(plain_onnx):
    pre, said = _resolve(contract_from_onnx(plain_onnx))
    assert pre.mean == (0, 0, 0) and pre.std == (1, 1, 1) and pre.assumed
    assert pre.to_dict()["assumed"] is True and pre.to_dict()["source"]["mean"].startswith("assumed")
    assert len(said) == 1 and "--mean/--std/--channel-order" in said[0] and "mean 0,0,0" in said[0]
    pre, said = _resolve(ModelContract("tv"), imagenet=True)
    assert pre.mean == IMAGENET_MEAN and pre.assumed and "ImageNet" in said[0]


def test_what_the_model_says_is_not_assumed(ultralytics_onnx):
    pre, said = _resolve(contract_from_onnx(ultralytics_onnx), imagenet=True)
    assert pre.mean == (0, 0, 0) and pre.std == (1, 1, 1) and not pre.assumed and said == []
    assert "Ultralytics" in pre.source_of("mean") and pre.source_of("scale").startswith("default")


def test_an_option_contradicting_metadata_wins_with_one_warning_naming_both(ultralytics_onnx):
    pre, said = _resolve(contract_from_onnx(ultralytics_onnx), options=InputOptions(mean=(0.5, 0.5, 0.5)))
    assert pre.mean == (0.5, 0.5, 0.5) and pre.source_of("mean") == "--mean" and pre.std == (1, 1, 1)
    assert len(said) == 1
    assert "--mean 0.5,0.5,0.5" in said[0] and "mean 0,0,0" in said[0] and "Ultralytics" in said[0]
    _, said = _resolve(contract_from_onnx(ultralytics_onnx), options=InputOptions(mean=(0, 0, 0), std=(1, 1, 1)))
    assert said == []  # the same values: nothing to warn about


def test_the_recipe_declares_over_the_model_and_options_over_the_recipe():
    recipe = Preprocess.from_dict({"mean": [0.2, 0.2, 0.2], "std": [0.3, 0.3, 0.3]}, origin="recipe r.yaml")
    timm_said = contract_from_timm("resnet18")
    pre, said = _resolve(timm_said, recipe, imagenet=True)
    assert pre.mean == (0.2,) * 3 and pre.source_of("mean") == "recipe r.yaml"
    assert pre.channel_order == "RGB" and pre.source_of("channel_order").startswith("timm") and said == []
    pre, said = _resolve(timm_said, recipe, InputOptions(std=(0.25, 0.25, 0.25), channel_order="BGR"), True)
    assert pre.std == (0.25,) * 3 and pre.channel_order == "BGR" and len(said) == 1
    assert "--std 0.25,0.25,0.25 overrides std 0.3,0.3,0.3 from recipe r.yaml" in said[0]
    assert "--channel-order BGR overrides channel_order RGB from timm" in said[0]


@pytest.mark.parametrize("options, match", [
    (InputOptions(mean=(0.5,) * 4, std=(1.0,) * 4), "gives 4 channels but m.onnx .* takes 3"),
    (InputOptions(mean=(0.5,) * 4), "has 4 values and std"),
    (InputOptions(bands=(4, 3)), "must name 3 file bands"),
    (InputOptions(std=(1.0, 0.0, 1.0)), "non-zero"),
])
def test_a_mean_or_std_of_the_wrong_length_is_a_one_line_error(plain_onnx, options, match):
    with pytest.raises(ConfigError, match=match):
        _resolve(contract_from_onnx(plain_onnx), options=options)


# ---- through the command line ----------------------------------------------------------------------
def _build(source, out, *extra) -> int:
    return main(["build", str(source), "-o", str(out), "--task", "segmentation", "--latency-runs", "0", *extra])


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("edgekit: warning:")]


def test_build_records_the_assumption_and_says_it_once(plain_onnx, tmp_path, capsys):
    assert _build(plain_onnx, tmp_path / "out") == 0
    said = _warnings(capsys.readouterr().err)
    assert len(said) == 1 and "assumed mean 0,0,0" in said[0] and "--mean/--std/--channel-order" in said[0]
    pre = json.loads((tmp_path / "out" / "manifest.json").read_text())["preprocess"]
    assert pre["assumed"] is True and pre["mean"] == [0, 0, 0] and pre["source"]["std"].startswith("assumed")
    report = json.loads((tmp_path / "out" / "report.json").read_text())["details"]
    assert report["input"]["assumed"] is True and report["contract"]["sources"]["channels"] == "ONNX input shape"
    assert "**assumed**" in (tmp_path / "out" / "report.md").read_text()


def test_build_of_an_ultralytics_export_uses_its_metadata(ultralytics_onnx, tmp_path, capsys):
    assert _build(ultralytics_onnx, tmp_path / "out", "--mean", "0.5,0.5,0.5") == 0
    said = [line for line in _warnings(capsys.readouterr().err) if "--task" not in line]  # the task rule's own
    assert len(said) == 1 and "--mean 0.5,0.5,0.5 overrides mean 0,0,0 from ONNX metadata (Ultralytics" in said[0]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    pre = manifest["preprocess"]
    assert pre["assumed"] is False and pre["mean"] == [0.5] * 3 and pre["source"]["mean"] == "--mean"
    assert "Ultralytics" in pre["source"]["std"] and manifest["classes"] == ["person", "bicycle", "car"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "- mean: 0.5, 0.5, 0.5 (--mean)" in md and "classes: 3 names: person, bicycle, car" in md


def test_build_with_a_mean_of_the_wrong_length_stops_in_one_line_and_writes_nothing(plain_onnx, tmp_path, capsys):
    code = _build(plain_onnx, tmp_path / "out", "--mean", "0.5,0.5,0.5,0.5", "--std", "1,1,1,1")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "takes 3" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_channel_order_other_than_rgb_bgr_is_refused_by_the_option(plain_onnx, tmp_path):
    assert _build(plain_onnx, tmp_path / "out", "--channel-order", "GRB") == 2
    assert not (tmp_path / "out").exists()


# ---- the declared input reaches calibration and verification ---------------------------------------
class _Stop(Exception):
    pass


def _capture_lowering(monkeypatch) -> dict:
    """Stop the precision stage at its start, keeping the calibration and held-out sets it was given."""
    import edgekit.convert.precision_policy as precision_policy

    seen: dict = {}

    def capture(onnx_in, out, spec, calib, held, *args, **kwargs):
        seen.update(calib=calib, held=held)
        raise _Stop

    monkeypatch.setattr(precision_policy, "lower_precision", capture)
    return seen


def _images(folder: Path, value: tuple[int, int, int], count: int, size: int = 32) -> Path:
    from PIL import Image

    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(folder / f"i{i}.png")
    return folder


def test_declared_mean_and_std_reach_the_calibration_and_held_out_inputs(plain_onnx, tmp_path, monkeypatch):
    from edgekit.convert.pipeline import BuildConfig, build

    seen = _capture_lowering(monkeypatch)
    calib = _images(tmp_path / "calib", (51, 102, 153), 2)
    _images(tmp_path / "calib_val", (51, 102, 153), 1)
    inputs = InputOptions(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125), channel_order="BGR")
    with pytest.raises(_Stop):
        build(str(plain_onnx), tmp_path / "out", BuildConfig(precision="int8", calib=calib, task="segmentation",
                                                               latency_runs=0, inputs=inputs))
    pixel = np.array([153, 102, 51], np.float32) / 255  # BGR: the file's RGB reversed
    expected = (pixel - np.array([0.1, 0.2, 0.3], np.float32)) / np.array([0.5, 0.25, 0.125], np.float32)
    for name, batch in (("calib", next(seen["calib"].batches())), ("held", next(seen["held"].batches())[0])):
        np.testing.assert_allclose(batch[0, :, 5, 5], expected, rtol=1e-6, err_msg=name)
    assert not (tmp_path / "out").exists()


def test_quantize_feeds_the_model_metadata_or_the_options(ultralytics_onnx, tmp_path, monkeypatch):
    seen = _capture_lowering(monkeypatch)
    calib = _images(tmp_path / "calib", (255, 0, 51), 2, size=64)
    args = ["quantize", str(ultralytics_onnx), "-o", str(tmp_path / "q.onnx"), "--precision", "int8",
            "--calib", str(calib), "--task", "segmentation"]  # the fixture's outputs are a mask, not boxes
    with pytest.raises(_Stop):
        main(args)
    np.testing.assert_allclose(next(seen["calib"].batches())[0, :, 0, 0], [1.0, 0.0, 0.2], rtol=1e-6)  # 0..1, RGB
    with pytest.raises(_Stop):
        main(args + ["--std", "0.5,0.5,0.5"])
    np.testing.assert_allclose(next(seen["calib"].batches())[0, :, 0, 0], [2.0, 0.0, 0.4], rtol=1e-6)
