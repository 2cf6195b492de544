"""Every detection output names its classes as the artifact does, ``class_<id>`` where it names none:
each file written by :class:`DetectionWriter`, then read back."""
from __future__ import annotations

import json
import sqlite3
from collections import namedtuple

import numpy as np
import pytest
from PIL import Image

from edgekit.artifact.classes import class_name, class_names
from edgekit.runtime.decode import Detections
from edgekit.detect.outputs import DetectionOutputs, DetectionWriter
from edgekit.tiling.preview import Preview, class_colour

Transform = namedtuple("Transform", "a b c d e f")  # the affine fields the writers read
BOXES = Detections(np.array([[2, 2, 10, 10], [20, 4, 30, 12], [40, 30, 50, 44]], np.float32),
                   np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 1, 3], np.int32))


def test_one_rule_names_a_class():
    assert class_name(("car", "tree"), 1) == "tree"
    assert class_name(("car", "tree"), 3) == "class_3" and class_name((), 0) == "class_0"
    assert class_name(("car", ""), 1) == "class_1"  # an empty name is no name
    assert class_names(("car",), 3) == ("car", "class_1", "class_2") and class_names(("a", "b")) == ("a", "b")


def _write(tmp_path, name: str, classes: tuple[str, ...], georef=None, preview=None) -> DetectionOutputs:
    outputs = DetectionOutputs(tmp_path / name, preview=tmp_path / f"{name}.png" if preview is not None else None)
    with DetectionWriter(outputs, tmp_path / "scene.tif", (60, 64, 3), classes, georef, preview) as writer:
        writer(BOXES)
    return outputs


@pytest.mark.parametrize("classes, names", [(("car", "tree"), ["car", "tree", "class_2", "class_3"]),
                                            ((), ["class_0", "class_1", "class_2", "class_3"])])
def test_coco_categories_carry_the_names(tmp_path, classes, names):
    coco = json.loads(_write(tmp_path, "boxes.json", classes).path.read_text())
    assert coco["categories"] == [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    by_id = {c["id"]: c["name"] for c in coco["categories"]}
    assert [by_id[a["category_id"]] for a in coco["annotations"]] == [names[0], names[1], names[3]]


def test_json_lines_records_name_the_class_beside_its_id(tmp_path):
    records = [json.loads(s) for s in _write(tmp_path, "boxes.jsonl", ("car", "tree")).path.read_text().splitlines()]
    assert [(r["class_id"], r["class"]) for r in records] == [(0, "car"), (1, "tree"), (3, "class_3")]


def test_geojson_properties_name_the_class(tmp_path):
    pytest.importorskip("pyproj")
    georef = {"crs": "EPSG:32617", "transform": Transform(0.5, 0.0, 500000.0, 0.0, -0.5, 4100000.0)}
    features = json.loads(_write(tmp_path, "boxes.geojson", ("car", "tree"), georef).path.read_text())["features"]
    assert [(f["properties"]["class_id"], f["properties"]["class"]) for f in features] == [
        (0, "car"), (1, "tree"), (3, "class_3")]


def test_geopackage_has_a_class_name_column(tmp_path):
    pyproj = pytest.importorskip("pyproj")
    georef = {"crs": pyproj.CRS.from_epsg(32617), "transform": Transform(0.5, 0.0, 500000.0, 0.0, -0.5, 4100000.0)}
    path = _write(tmp_path, "boxes.gpkg", ("car", "tree"), georef).path
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT class_id, class FROM detections ORDER BY fid").fetchall()
        kinds = {r[1]: r[2] for r in con.execute("PRAGMA table_info(detections)")}
    assert rows == [(0, "car"), (1, "tree"), (3, "class_3")]
    assert kinds["class_id"] == "INTEGER" and kinds["class"] == "TEXT"


def test_preview_has_a_legend_of_the_classes_found(tmp_path):
    view = Preview(60, 64)
    view.image[:] = 90
    path = _write(tmp_path, "boxes.json", ("car", "tree"), preview=view).preview
    with Image.open(path) as im:
        legend, pixels = json.loads(im.text["classes"]), np.asarray(im.convert("RGB"))
    assert [(e["id"], e["name"]) for e in legend] == [(0, "car"), (1, "tree"), (3, "class_3")]
    assert pixels.shape[0] == 60 and pixels.shape[1] > 64  # beside the image, never over it
    side = pixels[:, 64:].reshape(-1, 3)
    for c in (0, 1, 3):  # each class's swatch is drawn in its box colour
        assert (side == class_colour(c)).all(1).sum() >= 25
    assert not (side == class_colour(2)).all(1).any()
    box = pixels[2, 2:11]  # the first box's top edge, in class 0's colour
    assert (box == class_colour(0)).all()
