"""The held-out set feeds each image with its mask, cut the same way (folder images and tiles)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from edgekit.convert.calibration import CalibrationSet
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
