"""Precision stage: fp16 and int8 (both flavors) stay close to FP32, keep float32 I/O, place the
expected Q/DQ, fail clearly without calibration, and calibrate in bounded memory."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.images.image_set import CalibrationSet
from edgekit.convert.precision import PrecisionSpec, set_precision
from edgekit.convert.verify_precision import verify_precision
from edgekit.errors import CalibrationError, ConfigError, ParityError
from edgekit.preprocess import Preprocess

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SIZE = 32
PRE = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
# Agreement with FP32 an 8-bit model must reach on smooth images. int8 changes outputs by about
# 1-2 % of their range, so a label flips only where FP32's top two logits are that close: a few
# pixels on class borders. 90 % leaves room for those and still fails a broken quantization
# (a wrong scale or layout gives near-chance agreement, about 1 / classes).
MIN_AGREEMENT = 0.90


def small_cnn_onnx(path: Path, classify: bool = False, seed: int = 0) -> Path:
    """Conv-ReLU, depthwise Conv-ReLU with a residual Add, then 1x1 Conv logits (or GAP + Gemm)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = {
        "w1": rng.normal(0, 0.4, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8),
        "wd": rng.normal(0, 0.4, (8, 1, 3, 3)), "bd": rng.normal(0, 0.1, 8),
        "w2": rng.normal(0, 0.4, (4, 8, 1, 1)), "b2": np.zeros(4),
        "wg": rng.normal(0, 0.4, (5, 8)), "bg": np.zeros(5),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wd", "bd"], ["cd"], pads=[1, 1, 1, 1], group=8, name="dwconv"),
        helper.make_node("Relu", ["cd"], ["rd"], name="relu2"),
        helper.make_node("Add", ["r1", "rd"], ["skip"], name="add"),
    ]
    if classify:
        nodes += [
            helper.make_node("GlobalAveragePool", ["skip"], ["gap"], name="gap"),
            helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
            helper.make_node("Gemm", ["flat", "wg", "bg"], ["logits"], transB=1, name="fc"),
        ]
        out_shape = [1, 5]
    else:
        nodes.append(helper.make_node("Conv", ["skip", "w2", "b2"], ["logits"], name="conv2"))
        out_shape = [1, 4, SIZE, SIZE]
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items() if k in used],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def smooth_images(folder: Path, count: int, size: int = 40, seed: int = 0) -> Path:
    """Low-frequency colour fields (like real scenes, unlike white noise), as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((size, size), Image.BICUBIC).save(folder / f"img{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("precision")
    images = smooth_images(root / "imgs", 20)
    return {
        "root": root,
        "seg": small_cnn_onnx(root / "seg.onnx"),
        "cls": small_cnn_onnx(root / "cls.onnx", classify=True),
        "calib": CalibrationSet(images, (SIZE, SIZE), PRE, samples=12),
    }


def io_types(path: Path) -> set[int]:
    graph = onnx.load(str(path)).graph
    return {v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]}


def zero_points(path: Path) -> list[np.ndarray]:
    """The zero-point initializers of every QuantizeLinear node."""
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]


def test_fp32_copies_the_model(setup, tmp_path):
    result = set_precision(setup["seg"], tmp_path / "out.onnx", PrecisionSpec("fp32"))
    assert result.path.read_bytes() == setup["seg"].read_bytes()
    assert result.qdq_pairs == 0 and result.fp16_nodes == 0 and result.calib_samples == 0


def test_fp16_stays_close_to_fp32_with_float32_io(setup, tmp_path):
    result = set_precision(setup["seg"], tmp_path / "fp16.onnx", PrecisionSpec("fp16"), setup["calib"])
    assert result.fp16_nodes >= 3
    assert io_types(result.path) == {onnx.TensorProto.FLOAT}
    check = verify_precision(setup["seg"], result.path, setup["calib"].held_out(), "segmentation", 1.0)
    assert check.error.max_rel < 5e-3  # fp16 has 11 significant bits: ~1e-3 relative
    assert check.agreement > 0.99


@pytest.mark.parametrize("method", ["entropy", "max", "percentile"])
def test_ort_int8_is_u8s8_qdq_and_agrees_with_fp32(setup, tmp_path, method):
    spec = PrecisionSpec("int8", "onnxruntime", method)
    result = set_precision(setup["seg"], tmp_path / "int8.onnx", spec, setup["calib"])
    assert result.qdq_pairs > 0 and result.calib_samples == 12
    assert io_types(result.path) == {onnx.TensorProto.FLOAT}
    assert {zp.dtype for zp in zero_points(result.path)} == {np.dtype(np.uint8)}  # activations uint8
    weights = [n for n in onnx.load(str(result.path)).graph.node if n.op_type == "DequantizeLinear"]
    assert any(n.input[0].endswith("_quantized") for n in weights)  # int8 weight initializers
    check = verify_precision(setup["seg"], result.path, setup["calib"].held_out(), "segmentation", 100.0)
    assert check.agreement > MIN_AGREEMENT


def test_ort_int8_quantizes_only_the_chosen_op_types(setup, tmp_path):
    def gemm_weight(op_types):
        spec = PrecisionSpec("int8", "onnxruntime", "max", op_types=op_types)
        result = set_precision(setup["cls"], tmp_path / "int8.onnx", spec, setup["calib"])
        return next(n for n in onnx.load(str(result.path)).graph.node if n.op_type == "Gemm").input[1]

    assert gemm_weight(None) != "wg"  # the default (every op type) quantizes Gemm's weight
    assert gemm_weight(("Conv",)) == "wg"  # Conv only: Gemm keeps its float weight


def test_tensorrt_int8_is_symmetric_and_agrees_with_fp32(setup, tmp_path):
    spec = PrecisionSpec("int8", "tensorrt", "max")
    result = set_precision(setup["seg"], tmp_path / "trt.onnx", spec, setup["calib"])
    zps = zero_points(result.path)
    assert result.qdq_pairs > 0 and zps
    assert all(zp.dtype == np.int8 and not zp.any() for zp in zps)  # symmetric: int8 zero points 0
    assert io_types(result.path) == {onnx.TensorProto.FLOAT}
    check = verify_precision(setup["seg"], result.path, setup["calib"].held_out(), "segmentation", 100.0)
    assert check.agreement > MIN_AGREEMENT


@pytest.mark.parametrize("flavor", ["onnxruntime", "tensorrt"])
def test_classifier_int8_keeps_top1(setup, tmp_path, flavor):
    result = set_precision(setup["cls"], tmp_path / "cls.onnx", PrecisionSpec("int8", flavor, "max"), setup["calib"])
    check = verify_precision(setup["cls"], result.path, setup["calib"].held_out(), "classification", 100.0)
    assert check.miou is None and check.images == 8
    assert check.agreement >= 6 / 8  # top-1 of 8 held-out images; chance is 1/5


def test_nodes_to_exclude_stay_float(setup, tmp_path):
    spec = PrecisionSpec("int8", "onnxruntime", "max", nodes_to_exclude=("conv2",))
    result = set_precision(setup["seg"], tmp_path / "int8.onnx", spec, setup["calib"])
    graph = onnx.load(str(result.path)).graph
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    assert convs["conv2"].input[1] == "w2"  # float weight, no DequantizeLinear in front
    assert convs["conv1"].input[1] != "w1"  # the others are quantized


def test_int8_without_calibration_names_the_option(setup, tmp_path):
    with pytest.raises(CalibrationError, match="--calib"):
        set_precision(setup["seg"], tmp_path / "x.onnx", PrecisionSpec("int8"), None)
    assert not (tmp_path / "x.onnx").exists()


def test_too_small_calibration_set_fails_before_any_work(setup, tmp_path):
    with pytest.raises(CalibrationError, match="20 usable images, 50 asked"):
        set_precision(setup["seg"], tmp_path / "x.onnx", PrecisionSpec("int8", calib_samples=50), setup["calib"])


@pytest.mark.parametrize("kwargs, match", [
    ({"precision": "int4"}, "fp32, fp16, int8"),
    ({"flavor": "coreml"}, "tensorrt, onnxruntime, openvino"),
    ({"precision": "int8", "flavor": "tensorrt", "calib_method": "percentile"}, "entropy or max"),
    ({"calib_method": "mse"}, "entropy, max, percentile"),
])
def test_bad_specs_name_the_valid_choices(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PrecisionSpec(**kwargs)


def test_verify_fails_past_the_tolerance(setup, tmp_path):
    other = small_cnn_onnx(tmp_path / "other.onnx", seed=1)  # a different model: labels disagree
    with pytest.raises(ParityError, match="points of mIoU"):
        verify_precision(setup["seg"], other, setup["calib"].held_out(), "segmentation", 1.0)
    check = verify_precision(setup["seg"], other, setup["calib"].held_out(), "segmentation", 1.0, raise_on_fail=False)
    assert not check.passed and check.drop > 1.0
    assert json.dumps(check.to_dict())


# ---- calibration memory does not grow with the set -------------------------------------------
PEAK_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np, tifffile
    sys.path.insert(0, {tests!r})
    from conftest import tiny_segmenter_onnx
    from edgekit.images.image_set import CalibrationSet
    from edgekit.convert.precision import PrecisionSpec, set_precision
    import onnxruntime.quantization
    flavor, batches, chunk, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    if flavor == "tensorrt":
        import modelopt.onnx.quantization
    status = lambda key: int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024
    model = tiny_segmenter_onnx(work / "m.onnx", size=128, classes=3)
    image = work / "big.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8))
    calib = CalibrationSet(image, (128, 128), samples=batches)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    rss = status("VmRSS")
    set_precision(model, work / "q.onnx", PrecisionSpec("int8", flavor, "entropy", calib_chunk=chunk), calib)
    print(status("VmHWM") - rss)
""")


def peak_growth(tmp_path: Path, flavor: str, batches: int, chunk: int) -> int:
    """Bytes the peak RSS of a fresh process rises during set_precision (imports excluded)."""
    script = PEAK_SCRIPT.format(tests=str(Path(__file__).resolve().parent.parent))
    out = subprocess.run([sys.executable, "-c", script, flavor, str(batches), str(chunk), str(tmp_path)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
@pytest.mark.slow  # three or four fresh processes importing onnxruntime (and ModelOpt)
@pytest.mark.parametrize("flavor", ["onnxruntime", "tensorrt"])
def test_calibration_memory_does_not_grow_with_the_set(tmp_path, flavor):
    """Peak memory with 8 and 32 calibration tiles is the same. The control, ORT's calibrator fed
    all 32 in one pass (what quantize_static does by default), holds every activation: about
    32 x 4 tensors x 128x128 x 3-8 channels of float32, plus ORT's copies (~70 MB more)."""
    small = peak_growth(tmp_path, flavor, 8, 2)
    large = peak_growth(tmp_path, flavor, 32, 2)
    base = small if flavor == "onnxruntime" else peak_growth(tmp_path, "onnxruntime", 8, 2)
    control = peak_growth(tmp_path, "onnxruntime", 32, 32) - base
    assert control > 30 * 2**20, f"the control should show activations piling up ({control >> 20} MiB)"
    assert large - small < 0.25 * control, (small >> 20, large >> 20, control >> 20)


# ---- the stage's verb: lower, verify, fall back ----------------------------------------------
def test_tensorrt_int8_failing_verification_falls_back_to_fp32_between_qdq(setup, tmp_path):
    from edgekit.convert.precision_policy import lower_precision

    spec = PrecisionSpec("int8", "tensorrt", "max")
    held = setup["calib"].held_out()
    lowered = lower_precision(setup["seg"], tmp_path / "q.onnx", spec, setup["calib"], held, "segmentation",
                              max_drop=-1.0, enforce=False)  # a tolerance nothing meets: every attempt fails
    assert [a.high_precision for a in lowered.attempts] == ["fp16", "fp32"] and lowered.fell_back
    assert lowered.spec.high_precision == "fp32" and not lowered.check.passed
    assert [a["high_precision"] for a in json.loads(json.dumps(lowered.to_dict()))["attempts"]] == ["fp16", "fp32"]
    with pytest.raises(ParityError, match="held-out images"):
        lower_precision(setup["seg"], tmp_path / "q.onnx", spec, setup["calib"], held, "segmentation", max_drop=-1.0)
    ort = lower_precision(setup["seg"], tmp_path / "o.onnx", PrecisionSpec("int8", "onnxruntime", "max"),
                          setup["calib"], held, "segmentation", max_drop=100.0)
    assert len(ort.attempts) == 1 and ort.check.passed


def test_quantize_command_gets_the_same_fallback(setup, tmp_path, capsys):
    from edgekit.cli.main import main

    val = setup["calib"].source
    code = main(["quantize", str(setup["seg"]), "-o", str(tmp_path / "q.onnx"), "--precision", "int8",
                 "--target", "jetson-orin-nx", "--calib", str(val), "--calib-samples", "12", "--val", str(val),
                 "--max-drop", "-1"])
    captured = capsys.readouterr()
    assert code == 1 and "retrying with fp32 there" in captured.out  # a failed check, not bad input
    assert "points of mIoU" in captured.err and not (tmp_path / "q.onnx").exists()


def test_fp16_of_a_graph_with_onnx_runtime_contrib_ops_is_one_line(tmp_path):
    """A transformer's fp32 artifact holds ORT's fused ops; AutoCast would fail deep inside ModelOpt."""
    import onnx
    from onnx import TensorProto, helper


    graph = helper.make_graph([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(model, str(tmp_path / "fused.onnx"))
    with pytest.raises(ConfigError, match=r"ONNX Runtime-only ops \(Gelu\)"):
        set_precision(tmp_path / "fused.onnx", tmp_path / "out.onnx", PrecisionSpec("fp16"), None)
    assert not (tmp_path / "out.onnx").exists()



def test_int8_of_mobilevitv2s_dynamo_graph_quantizes(setup, tmp_path):
    """MobileViTv2's dynamo graph, simplified, has constants read by several nodes; ORT's QDQ
    quantizer stopped on them ("shared mode is not supported for weight", found by the zoo). The
    precision stage gives each reader its own copy first."""
    import timm
    import torch

    from edgekit.convert.export import ExportSpec, export_onnx
    from edgekit.convert.initializers import unshared_initializers
    from edgekit.convert.reparam import reparameterize
    from edgekit.convert.simplify import simplify_onnx

    x = torch.randn(1, 3, 64, 64)
    model = reparameterize(timm.create_model("mobilevitv2_050", pretrained=False).eval(), x).model
    exported = export_onnx(model, tmp_path / "mv2.onnx", ExportSpec((64, 64), runtime="tensorrt"))  # the dynamo graph
    simple = simplify_onnx(exported.path, tmp_path / "mv2_s.onnx").path
    copy = unshared_initializers(simple, tmp_path / "unshared.onnx")
    graph = onnx.load(str(copy)).graph
    reads = [name for node in graph.node for name in set(node.input)]
    assert copy != simple and all(reads.count(init.name) <= 1 for init in graph.initializer)
    calib = CalibrationSet(smooth_images(tmp_path / "imgs", 6), (64, 64), samples=4)
    result = set_precision(simple, tmp_path / "mv2_int8.onnx", PrecisionSpec("int8", calib_samples=4), calib)
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert unshared_initializers(setup["seg"], tmp_path / "x.onnx") == setup["seg"]  # nothing shared: untouched


def test_a_lowering_without_held_out_images_is_unverified_not_passed(setup, tmp_path):
    """No held-out images: the attempt is recorded as not checked (None), never as passed."""
    from edgekit.convert.precision_policy import lower_precision

    lowered = lower_precision(setup["seg"], tmp_path / "q.onnx", PrecisionSpec("int8", "onnxruntime", "max"),
                              setup["calib"], None, "segmentation", max_drop=1.0)
    assert lowered.check is None and lowered.verified is False
    assert lowered.attempts[0].passed is None and "unchecked" in lowered.attempts[0].describe()
    stored = json.loads(json.dumps(lowered.to_dict()))
    assert stored["verified"] is False and stored["attempts"][0]["passed"] is None
    assert stored["random_input_error"]["max_abs"] > 0  # int8 does change the outputs: the figure is measured
    held = lower_precision(setup["seg"], tmp_path / "h.onnx", PrecisionSpec("int8", "onnxruntime", "max"),
                           setup["calib"], setup["calib"].held_out(), "segmentation", max_drop=100.0)
    assert held.verified is True and held.attempts[0].passed is True and held.to_dict()["verified"] is True
