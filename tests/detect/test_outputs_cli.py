"""`edgekit infer` on detection artifacts: COCO and GeoJSON outputs, streaming, bad input (exit 2)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgekit.cli.main import main
from edgekit.tiling.preview import class_colour
from tests.conftest import make_cpu_artifact
from tests.detect.detect_fixtures import expected_boxes, make_detector_artifact, squares_image

CORNERS = [(10, 12), (70, 100), (100, 20)]


class _Result:
    def __init__(self, code: int, output: str):
        self.exit_code, self.output = code, output


def _run(*args):
    """``edgekit infer ARGS`` through the real entry point: exit code and stdout + stderr."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = main(["infer", *map(str, args), "--no-progress"])
    return _Result(code, buf.getvalue())


@pytest.fixture
def detector(tmp_path):
    return make_detector_artifact(tmp_path / "det", size=64)


@pytest.fixture
def geotiff(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    img = squares_image(128, 160, CORNERS)
    path = tmp_path / "scene.tif"
    transform = from_origin(500000.0, 4100000.0, 0.5, 0.5)  # UTM 17N, 0.5 m pixels
    with rasterio.open(path, "w", driver="GTiff", height=128, width=160, count=3, dtype="uint8",
                       crs="EPSG:32617", transform=transform) as ds:
        ds.write(img.transpose(2, 0, 1))
    return path


def test_coco_json_in_pixels(tmp_path, detector):
    np.save(tmp_path / "img.npy", squares_image(128, 160, CORNERS))
    out = tmp_path / "boxes.json"
    res = _run(detector, tmp_path / "img.npy", "-o", out, "--overlap", 16, "--conf", 0.5,
               "--jsonl", tmp_path / "boxes.jsonl", "--preview", tmp_path / "p.png")
    assert res.exit_code == 0, res.output
    coco = json.loads(out.read_text())
    assert coco["images"][0]["width"] == 160 and coco["categories"] == [{"id": 1, "name": "square"}]
    got = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in coco["annotations"])])
    np.testing.assert_allclose(got[np.lexsort((got[:, 0], got[:, 1]))], expected_boxes(CORNERS), atol=0.01)
    lines = [json.loads(s) for s in (tmp_path / "boxes.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and {tuple(r["bbox"]) for r in lines} == {tuple(a) for a in got.tolist()}
    assert {(r["class_id"], r["class"]) for r in lines} == {(0, "square")}
    with Image.open(tmp_path / "p.png") as im:
        assert json.loads(im.text["classes"]) == [{"id": 0, "name": "square", "colour": list(class_colour(0))}]


def test_a_detector_without_names_writes_class_ids_as_names(tmp_path):
    detector = make_detector_artifact(tmp_path / "det", size=64, classes=())
    np.save(tmp_path / "img.npy", squares_image(128, 160, CORNERS))
    res = _run(detector, tmp_path / "img.npy", "-o", tmp_path / "boxes.json", "--overlap", 16, "--conf", 0.5,
               "--jsonl", tmp_path / "boxes.jsonl")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "boxes.json").read_text())["categories"] == [{"id": 1, "name": "class_0"}]
    lines = [json.loads(s) for s in (tmp_path / "boxes.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and {(r["class_id"], r["class"]) for r in lines} == {(0, "class_0")}


def test_geojson_matches_rasterio_transform_and_pyproj(tmp_path, detector, geotiff):
    import rasterio
    from pyproj import Transformer

    out = tmp_path / "boxes.geojson"
    res = _run(detector, geotiff, "-o", out, "--overlap", 16, "--conf", 0.5)
    assert res.exit_code == 0, res.output
    features = json.loads(out.read_text())["features"]
    assert len(features) == len(CORNERS)
    assert {(f["properties"]["class_id"], f["properties"]["class"]) for f in features} == {(0, "square")}
    to_wgs84 = Transformer.from_crs("EPSG:32617", "EPSG:4326", always_xy=True)
    with rasterio.open(geotiff) as ds:
        transform = ds.transform
    for f in features:
        x1, y1, x2, y2 = f["properties"]["bbox"]
        ring = np.array(f["geometry"]["coordinates"][0])
        # top-left and bottom-right corners of the box, through rasterio's own pixel -> CRS mapping
        for (row, col), k in (((y1, x1), 0), ((y2, x2), 2)):
            x, y = rasterio.transform.xy(transform, row, col, offset="ul")
            lon, lat = to_wgs84.transform(x, y)
            np.testing.assert_allclose(ring[k], [lon, lat], atol=1e-9)
        assert ring[0].tolist() == ring[-1].tolist()
        assert -84 < ring[0][0] < -80 and 36 < ring[0][1] < 38  # EPSG:32617 at 500 km E, 4100 km N


def test_geopackage_is_read_by_gdal_in_the_rasters_crs(tmp_path, detector, geotiff):
    """Written with sqlite3 only; read back by GDAL (pyogrio): CRS, polygons against rasterio's transform."""
    pyogrio = pytest.importorskip("pyogrio")
    import rasterio

    out = tmp_path / "boxes.gpkg"
    res = _run(detector, geotiff, "-o", out, "--overlap", 16, "--conf", 0.5)
    assert res.exit_code == 0, res.output
    info = pyogrio.read_info(out)
    assert info["crs"] == "EPSG:32617" and info["geometry_type"] == "Polygon" and info["features"] == len(CORNERS)
    meta, _, geometry, fields = pyogrio.raw.read(out)
    columns = dict(zip(meta["fields"], fields))
    assert set(columns["class"]) == {"square"} and set(columns["class_id"]) == {0}
    assert all(s >= 0.5 for s in columns["score"])
    with rasterio.open(geotiff) as ds:
        transform = ds.transform
    for k, wkb in enumerate(geometry):  # little-endian WKB polygon: order, type 3, 1 ring, its points
        assert wkb[0] == 1 and int.from_bytes(wkb[1:5], "little") == 3 and int.from_bytes(wkb[5:9], "little") == 1
        ring = np.frombuffer(wkb[13:], "<f8").reshape(-1, 2)
        x1, y1, x2, y2 = (columns[c][k] for c in ("x1", "y1", "x2", "y2"))
        left, top = rasterio.transform.xy(transform, y1, x1, offset="ul")
        right, bottom = rasterio.transform.xy(transform, y2, x2, offset="ul")
        bounds = (*ring.min(0), *ring.max(0))
        np.testing.assert_allclose(bounds, (left, bottom, right, top), atol=1e-6)


def test_geopackage_needs_a_georeferenced_input(tmp_path, detector):
    np.save(tmp_path / "img.npy", squares_image(64, 64, [(5, 5)]))
    res = _run(detector, tmp_path / "img.npy", "-o", tmp_path / "b.gpkg")
    assert res.exit_code == 2 and "a GeoPackage needs a georeferenced input" in res.output
    assert not list(tmp_path.glob("*b.gpkg*"))


@pytest.mark.parametrize("name", ["b.geojson", "b.gpkg"])
def test_georeferenced_boxes_without_rasterio_stop_in_one_line(tmp_path, detector, monkeypatch, name):
    """A GeoTIFF's CRS and transform are read by rasterio: without it, one line naming it, nothing written."""
    import sys

    import tifffile

    tifffile.imwrite(tmp_path / "scene.tif", squares_image(64, 64, [(5, 5)]), photometric="rgb",
                     extratags=[(33550, "d", 3, (0.5, 0.5, 0.0), True),
                                (33922, "d", 6, (0.0, 0.0, 0.0, 500000.0, 4100000.0, 0.0), True),
                                (34735, "H", 8, (1, 1, 0, 1, 3072, 0, 1, 32617), True)])
    monkeypatch.setitem(sys.modules, "rasterio", None)
    res = _run(detector, tmp_path / "scene.tif", "-o", tmp_path / name)
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "read with rasterio, which is not installed" in res.output and "-o boxes.json" in res.output
    assert not list(tmp_path.glob("*b.*"))


def test_detection_artifact_refuses_segmentation_options(tmp_path, detector):
    np.save(tmp_path / "img.npy", squares_image(64, 64, []))
    for extra in (["--blend", "linear"], ["--probabilities", tmp_path / "p.tif"]):
        res = _run(detector, tmp_path / "img.npy", "-o", tmp_path / "b.json", *extra)
        assert res.exit_code == 2 and "apply to segmentation artifacts" in res.output
    assert not list(tmp_path.glob("b*")) and not list(tmp_path.glob(".b*"))


def test_segmentation_artifact_refuses_detection_options(tmp_path):
    seg = make_cpu_artifact(tmp_path / "seg")
    np.save(tmp_path / "img.npy", squares_image(64, 64, []))
    res = _run(seg, tmp_path / "img.npy", "-o", tmp_path / "m.tif", "--conf", 0.3)
    assert res.exit_code == 2 and "--conf apply to detection artifacts" in res.output
    res = _run(seg, tmp_path / "img.npy", "-o", tmp_path / "m.tif", "--overview")
    assert res.exit_code == 2 and "--overview apply to detection artifacts" in res.output
    assert not (tmp_path / "m.tif").exists()


def test_geojson_needs_a_georeferenced_input(tmp_path, detector):
    np.save(tmp_path / "img.npy", squares_image(64, 64, [(5, 5)]))
    res = _run(detector, tmp_path / "img.npy", "-o", tmp_path / "b.geojson")
    assert res.exit_code == 2 and "georeferenced" in res.output and len(res.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*b.geojson*"))


def test_wrong_det_format_is_a_one_line_error_and_writes_nothing(tmp_path, detector):
    np.save(tmp_path / "img.npy", squares_image(64, 64, [(5, 5)]))
    res = _run(detector, tmp_path / "img.npy", "-o", tmp_path / "b.json", "--det-format", "end2end",
               "--jsonl", tmp_path / "b.jsonl")
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*b.json*"))


def test_a_folder_of_images_gives_one_coco_file_each(tmp_path, detector):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    layouts = {"a": [(5, 5)], "b": [(40, 70), (90, 20)]}
    for name, corners in layouts.items():
        np.save(scenes / f"{name}.npy", squares_image(128, 160, corners))
    res = _run(detector, scenes, "-o", tmp_path / "boxes", "--overlap", 16, "--conf", 0.5, "--preview", tmp_path / "views")
    assert res.exit_code == 0, res.output
    for name, corners in layouts.items():
        coco = json.loads((tmp_path / "boxes" / f"{name}.json").read_text())
        got = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in coco["annotations"])])
        np.testing.assert_allclose(got[np.lexsort((got[:, 0], got[:, 1]))], expected_boxes(corners), atol=0.01)
        assert (tmp_path / "views" / f"{name}.png").is_file()
    assert "2 images" in res.output


def test_a_folder_of_images_needs_output_folders(tmp_path, detector):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    np.save(scenes / "a.npy", squares_image(64, 64, [(5, 5)]))
    res = _run(detector, scenes, "-o", tmp_path / "boxes.json")
    assert res.exit_code == 2 and "name folders, not files" in res.output
    assert not (tmp_path / "boxes.json").exists()
