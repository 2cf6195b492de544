"""Precision verification against ground-truth masks: the drop is the difference of the two mIoUs."""
import numpy as np
import pytest
from PIL import Image

from edgekit.convert.calibration import CalibrationSet
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

