"""Recovery tiles from one large image cover the teacher's classes as a folder cut by kind does."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from edgekit.compress.tiles import training_tiles
from edgekit.images.image_set import CalibrationSet
from edgekit.preprocess import Preprocess

SIZE = (64, 64)
PLAIN = Preprocess(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


class ColourTeacher(nn.Module):
    """Class = the brightest channel (0 blue 'ocean', 1 green 'land', 2 red 'lake'), sure of it."""

    def forward(self, x):
        return 20 * x[:, [2, 1, 0]]


def _sea_image(path):
    """512x768 'ocean' with a strip of 'land' and one small 'lake' (0.4 % of the pixels)."""
    image = np.zeros((512, 768, 3), np.uint8)
    image[..., 2] = 200
    image[:, 640:] = (0, 200, 0)
    image[400:440, 80:120] = (200, 0, 0)
    Image.fromarray(image).save(path)
    return path


def _shares(path, windows):
    image = np.asarray(Image.open(path))
    labels = np.concatenate([image[r : r + h, c : c + w].reshape(-1, 3).argmax(1) for r, c, h, w in windows])
    return np.bincount(2 - labels, minlength=3) / labels.size  # channel 2 (blue) is class 0


def test_tiles_of_one_large_image_cover_every_class_where_a_blind_cut_does_not(tmp_path):
    path = _sea_image(tmp_path / "sea.png")
    blind = CalibrationSet(path, SIZE, PLAIN, samples=6, batch=2).items  # the grid, shuffled: what compress used
    assert _shares(path, [s.window for s in blind])[2] == 0  # no lake in the blind cut

    tiles = training_tiles(ColourTeacher(), path, SIZE, PLAIN, samples=6, batch=2)
    shares = _shares(path, tiles.windows)
    assert len(tiles.windows) == 6 and [b.shape for b in tiles.batches] == [(2, 3, 64, 64)] * 3
    assert shares[2] > 0.05 and shares[1] > 0.15  # the lake sought out, the land strip too
    assert shares[0] < 0.8 < _shares(path, [(0, 0, 512, 768)])[0]  # the ocean fills only its share
    assert tiles.shares[2] == pytest.approx(shares[2], abs=0.03) and tiles.image_shares[2] < 0.01
    batch = torch.from_numpy(tiles.batches[0])
    assert torch.equal(ColourTeacher()(batch).argmax(1), ColourTeacher()(batch).argmax(1))  # real pixels, model input
    assert len({(r, c) for r, c, _, _ in tiles.windows}) == 6  # six different places


def test_unsure_pixels_are_a_bucket_of_their_own(tmp_path):
    """A uniform image but for a patch where the teacher hesitates: the patch is chosen early."""
    image = np.full((256, 256, 3), (0, 0, 200), np.uint8)
    image[180:220, 180:220] = (0, 100, 100)  # green = blue: an even split between two classes
    Image.fromarray(image).save(tmp_path / "flat.png")
    tiles = training_tiles(ColourTeacher(), tmp_path / "flat.png", SIZE, PLAIN, samples=2, batch=1)
    r, c, h, w = tiles.windows[0]
    assert r < 220 and r + h > 180 and c < 220 and c + w > 180
    assert tiles.shares[-1] > 0.05 and tiles.image_shares[-1] < 0.05
