"""The segmentation preview's legend: a swatch and the name of each class it shows, beside the image,
and the same legend as the PNG's ``classes`` text chunk; read back from the file."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from edgekit.tiling.preview import PALETTE, Preview, class_colour


def _preview(classes) -> Preview:
    view = Preview(40, 50, classes=classes)
    view.image[:] = 100
    view.mask[:, :20], view.mask[:, 20:45], view.mask[:, 45:] = 0, 2, 255  # class 1 absent, a nodata strip
    return view


def _read(path):
    with Image.open(path) as im:
        return json.loads(im.text["classes"]), np.asarray(im.convert("RGB"))


def test_legend_names_the_classes_shown(tmp_path):
    _preview(("water", "land", "cloud")).save(tmp_path / "p.png")
    legend, pixels = _read(tmp_path / "p.png")
    assert legend == [{"id": 0, "name": "water", "colour": list(class_colour(0))},
                      {"id": 2, "name": "cloud", "colour": list(class_colour(2))}]
    assert pixels.shape[0] == 40 and pixels.shape[1] > 50
    overlay = (0.55 * 100 + 0.45 * PALETTE[0].astype(np.float32)).astype(np.uint8)
    np.testing.assert_array_equal(pixels[:, :20].reshape(-1, 3), np.tile(overlay, (40 * 20, 1)))  # image untouched
    assert (pixels[:, 45:50] == 100).all()  # nodata left bare
    side = pixels[:, 50:].reshape(-1, 3)
    assert (side == class_colour(0)).all(1).sum() >= 25 and (side == class_colour(2)).all(1).sum() >= 25
    assert not (side == class_colour(1)).all(1).any()


def test_unnamed_classes_fall_back_to_their_ids_and_the_names_are_drawn(tmp_path):
    _preview(()).save(tmp_path / "ids.png")
    _preview(("a-much-longer-name", "land", "b")).save(tmp_path / "names.png")
    (ids, ids_px), (names, names_px) = _read(tmp_path / "ids.png"), _read(tmp_path / "names.png")
    assert [e["name"] for e in ids] == ["class_0", "class_2"] and [e["name"] for e in names] == ["a-much-longer-name", "b"]
    assert names_px.shape[1] > ids_px.shape[1]  # the panel is as wide as the longest name drawn


def test_no_class_shown_means_no_legend(tmp_path):
    view = Preview(40, 50, classes=("water",))
    view.image[:] = 7
    view.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        assert "classes" not in im.text and im.size == (50, 40)
