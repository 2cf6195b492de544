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
