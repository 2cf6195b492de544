"""Stitching: rows come out once, in order, normalised; memory never grows with image height."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.images.geometry import TileLayout
from edgekit.tiling.merge import NODATA_CLASS, Stitcher, probabilities_from_logits


def _stitch(values: np.ndarray, layout: TileLayout, skip=lambda w: False):
    """Stitch tiles cut from a known (C, H, W) probability image; return emitted blocks."""
    blocks = []
    stitcher = Stitcher(layout.height, layout.width, values.shape[0], layout.rows, layout.window_shape[0],
                        layout.weigher(), blocks.append, block=48)
    for w in layout.windows():
        if skip(w):
            stitcher.skip(w)
        else:
            stitcher.add(w, values[:, w.row:w.bottom, w.col:w.right])
    stitcher.close()
    return blocks


@pytest.mark.parametrize("blend", ["gaussian", "linear", "crop"])
def test_stitching_tiles_of_one_image_gives_that_image(blend):
    rng = np.random.default_rng(1)
    probs = probabilities_from_logits(rng.normal(size=(1, 4, 230, 170)))[0]
    blocks = _stitch(probs, TileLayout(230, 170, 64, 64, 16, blend))
    tops = [b.top for b in blocks]
    assert tops == sorted(tops) and tops[0] == 0
    assert sum(b.mask.shape[0] for b in blocks) == 230
    got = np.concatenate([b.probabilities for b in blocks]).transpose(2, 0, 1)
    np.testing.assert_allclose(got, probs, atol=1e-3)  # float16 out
    np.testing.assert_array_equal(np.concatenate([b.mask for b in blocks]), probs.argmax(0))


def test_skipped_tiles_become_nodata_and_neighbours_keep_values():
    probs = np.full((2, 200, 200), 0.5, np.float32)
    probs[1] += 0.1
    layout = TileLayout(200, 200, 64, 64, 16)
    blocks = _stitch(probs, layout, skip=lambda w: w.row == 0 and w.col == 0)
    mask = np.concatenate([b.mask for b in blocks])
    assert (mask[:40, :40] == NODATA_CLASS).all()  # only the skipped tile covers these pixels
    assert (mask[70:, :] == 1).all() and (mask[:, 70:] == 1).all()


def test_stitcher_memory_does_not_depend_on_image_height():
    peaks = []
    for height in (300, 3011):
        layout = TileLayout(height, 2000, 64, 64, 16)
        probs = np.full((3, height, 2000), 1 / 3, np.float32)
        stitcher = Stitcher(height, 2000, 3, layout.rows, 64, layout.weigher(), lambda rows: None, probabilities=False)
        for w in layout.windows():
            stitcher.add(w, probs[:, w.row:w.bottom, w.col:w.right])
        stitcher.close()
        peaks.append(stitcher.peak_bytes)
    assert peaks[1] <= 1.1 * peaks[0]
    band = 4 * 4 * 64 * 2000  # a float band of a full tile row (classes + weight)
    assert peaks[0] < band / 2


def test_probabilities_sum_to_one_and_sigmoid_for_one_channel():
    rng = np.random.default_rng(0)
    p = probabilities_from_logits(rng.normal(size=(2, 5, 8, 8)) * 30)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    s = probabilities_from_logits(np.array([[[[0.0, 100.0]]]]))
    np.testing.assert_allclose(s.ravel(), [0.5, 1.0])
