"""The held-out set feeds each image with its mask, cut the same way (folder images and tiles)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.images.image_set import CalibrationSet
from edgekit.evaluate import HeldOutSet
from edgekit.preprocess import Preprocess


def test_folder_images_and_masks_are_fitted_alike(tmp_path):
    (tmp_path / "val" / "masks").mkdir(parents=True)
    labels = (np.arange(40 * 50).reshape(40, 50) % 3).astype(np.uint8)
    Image.fromarray(np.repeat(labels[..., None] * 80, 3, axis=2)).save(tmp_path / "val" / "a.png")
    Image.fromarray(labels).save(tmp_path / "val" / "masks" / "a.png")
    held = HeldOutSet.beside(CalibrationSet(tmp_path / "val", (32, 32), Preprocess()))
    assert held.masks == tmp_path / "val" / "masks"
    (x, truth), = held.batches()
    assert x.shape == (1, 3, 32, 32) and truth.shape == (1, 32, 32)
    np.testing.assert_array_equal(truth[0], labels[4:36, 9:41])
    assert held.key()["masks"] and held.key()["preprocess"]["scale"] == 255.0


def test_tiles_of_one_large_image_take_the_same_window_of_its_mask(tmp_path):
    (tmp_path / "masks").mkdir()
    labels = np.random.default_rng(0).integers(0, 3, (70, 64), dtype=np.uint8)
    Image.fromarray(np.repeat(labels[..., None], 3, axis=2)).save(tmp_path / "big.png")
    Image.fromarray(labels).save(tmp_path / "masks" / "big.png")
    held = HeldOutSet(CalibrationSet(tmp_path / "big.png", (32, 32), Preprocess()), tmp_path / "masks")
    for sample, (_, truth) in zip(held.items, held.batches()):
        r, c, h, w = sample.window
        np.testing.assert_array_equal(truth[0], labels[r:r + h, c:c + w])
    assert len(held.items) == 6  # 3 rows x 2 columns of the tile planner's grid


def _classifier_onnx(path, seed: int, classes: int = 3):
    """Conv -> GlobalAveragePool -> Flatten: (N, 3, H, W) -> (N, classes) scores."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).normal(0, 1, (classes, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]), helper.make_node("GlobalAveragePool", ["h"], ["p"]),
         helper.make_node("Flatten", ["p"], ["y"])], "cls",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, classes])], [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_classification_labels_csv_scores_top1_against_truth(tmp_path):
    from edgekit.images.image_set import CalibrationSet
    from edgekit.convert.onnx_check import run_onnx
    from edgekit.convert.verify_precision import verify_precision
    from edgekit.evaluate import HeldOutSet
    from edgekit.preprocess import Preprocess

    folder = tmp_path / "val"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = ["file,class"]
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"t{i}.png")
        rows.append(f"t{i}.png,{('a', 'b', 'c')[i % 3] if i % 2 else i % 3}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    ref, cand = _classifier_onnx(tmp_path / "ref.onnx", 0), _classifier_onnx(tmp_path / "cand.onnx", 1)
    images = CalibrationSet(folder, (16, 16), Preprocess())
    held = HeldOutSet.beside(images, classes=("a", "b", "c"))
    check = verify_precision(ref, cand, held, "classification", 100.0)
    truth, right = {}, {"ref": 0, "cand": 0}
    for row in rows[1:]:
        name, value = row.split(",")
        truth[name] = int(value) if value.isdigit() else "abc".index(value)
    for sample, batch in zip(images.items, images.batches()):
        for key, model in (("ref", ref), ("cand", cand)):
            right[key] += int(run_onnx(model, batch).argmax(1)[0] == truth[sample.path.name])
    assert check.drop_basis == "ground truth"
    assert check.miou_truth_reference == pytest.approx(right["ref"] / 12)
    assert check.miou_truth == pytest.approx(right["cand"] / 12)
    assert check.drop == pytest.approx(100 * (right["ref"] - right["cand"]) / 12)


def test_labels_csv_errors_are_one_line(tmp_path):
    from edgekit.errors import InputError
    from edgekit.evaluate import read_labels

    (tmp_path / "labels.csv").write_text("a.png,dog\n")
    with pytest.raises(InputError, match="neither an index nor one of cat"):
        read_labels(tmp_path / "labels.csv", ("cat",))
    (tmp_path / "labels.csv").write_text("a.png\n")
    with pytest.raises(InputError, match="write file,class"):
        read_labels(tmp_path / "labels.csv")
