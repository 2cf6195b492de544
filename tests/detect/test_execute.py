"""Tiled detection over whole images: one box per object across tile borders, nodata, streaming."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.detect.execute import DetectConfig, detect_image
from edgekit.errors import ConfigError
from edgekit.images.geometry import axis_starts
from tests.detect.detect_fixtures import expected_boxes, make_detector_artifact, squares_image

TILE, OVERLAP = 64, 16


def _collect():
    got = []
    return got, got.append


def _boxes(got):
    b = np.concatenate([d.boxes for d in got]) if got else np.zeros((0, 4), np.float32)
    return b[np.lexsort((b[:, 0], b[:, 1]))]


def test_objects_in_tile_overlaps_are_reported_once(tmp_path):
    h, w = 150, 170
    rows, cols = axis_starts(h, TILE, OVERLAP), axis_starts(w, TILE, OVERLAP)
    # squares inside the overlap of two and of four tiles, cut by tile borders, and in plain interiors
    corners = [(rows[1] + 2, 5), (3, cols[1] + 3), (rows[1] + 2, cols[1] + 3), (rows[1] - 4, cols[2] - 4),
               (30, 30), (h - 9, w - 9), (0, 0)]
    np.save(tmp_path / "img.npy", squares_image(h, w, corners))
    art = make_detector_artifact(tmp_path / "art", size=TILE)
    got, sink = _collect()
    result = detect_image(art, tmp_path / "img.npy", sink, DetectConfig(overlap=OVERLAP, conf=0.5))
    np.testing.assert_allclose(_boxes(got), expected_boxes(corners), atol=1e-4)
    assert result.boxes == len(corners)
    assert result.tiles == len(rows) * len(cols)
    assert result.det_format == "yolov8"


def test_boxes_stream_band_by_band(tmp_path):
    h, w = 300, 64
    corners = [(5, 5), (150, 20), (280, 40)]
    np.save(tmp_path / "img.npy", squares_image(h, w, corners))
    art = make_detector_artifact(tmp_path / "art", size=TILE)
    got, sink = _collect()
    detect_image(art, tmp_path / "img.npy", sink, DetectConfig(overlap=OVERLAP, conf=0.5))
    assert len(got) == 3  # each square final in its own band, before the image ended
    assert [float(d.boxes[0, 1]) for d in got] == [5.0, 150.0, 280.0]


def test_image_smaller_than_a_tile(tmp_path):
    np.save(tmp_path / "img.npy", squares_image(40, 50, [(20, 30)]))
    art = make_detector_artifact(tmp_path / "art", size=TILE)
    got, sink = _collect()
    detect_image(art, tmp_path / "img.npy", sink, DetectConfig(overlap=OVERLAP, conf=0.5))
    np.testing.assert_allclose(_boxes(got), expected_boxes([(20, 30)]), atol=1e-4)


def test_nodata_tiles_are_skipped(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    img = squares_image(128, 192, [(10, 10)])
    img[:, 128:] = 7  # a nodata block as wide as a tile
    path = tmp_path / "img.tif"
    with rasterio.open(path, "w", driver="GTiff", height=128, width=192, count=3, dtype="uint8", nodata=7) as ds:
        ds.write(img.transpose(2, 0, 1))
    art = make_detector_artifact(tmp_path / "art", size=TILE)
    got, sink = _collect()
    result = detect_image(art, path, sink, DetectConfig(overlap=0, conf=0.5))
    assert result.skipped_tiles == 2
    np.testing.assert_allclose(_boxes(got), expected_boxes([(10, 10)]), atol=1e-4)


def test_overlap_must_be_smaller_than_the_tile(tmp_path):
    np.save(tmp_path / "img.npy", squares_image(80, 80, []))
    art = make_detector_artifact(tmp_path / "art", size=TILE)
    with pytest.raises(ConfigError, match="smaller than the 64x64 tile"):
        detect_image(art, tmp_path / "img.npy", lambda d: None, DetectConfig(overlap=64))


def test_overview_pass_finds_an_object_larger_than_the_overlap(tmp_path):
    """A 36-px square in a 256-px image is a 9-px square on the 64-px overview (every 4th pixel):
    the overview finds it whole, scaled back to image pixels; a small square stays the tiles'."""
    corners = [(100, 60)]
    img = squares_image(256, 256, corners, square=36)
    img[200:209, 200:209] = 255  # a 9-px square: the tiles find it, the overview (2 px there) cannot
    np.save(tmp_path / "img.npy", img)
    art = make_detector_artifact(tmp_path / "art", size=TILE)
    tiles_only, sink = _collect()
    detect_image(art, tmp_path / "img.npy", sink, DetectConfig(overlap=OVERLAP, conf=0.5))
    assert not any((b[2] - b[0]) > 30 for b in _boxes(tiles_only))  # the tiles see the big square in pieces
    got, sink = _collect()
    result = detect_image(art, tmp_path / "img.npy", sink, DetectConfig(overlap=OVERLAP, conf=0.5, overview=True))
    assert result.overview_boxes == 1
    boxes = _boxes(got)
    big = boxes[(boxes[:, 2] - boxes[:, 0]) > 30]
    np.testing.assert_allclose(big, expected_boxes(corners, square=36), atol=1e-3)  # one box, the whole square
    assert any(np.allclose(b, [200, 200, 209, 209], atol=1e-3) for b in boxes)


def test_overview_keeps_only_boxes_larger_than_the_overlap(tmp_path):
    np.save(tmp_path / "img.npy", squares_image(256, 256, [(100, 60)], square=36))
    art = make_detector_artifact(tmp_path / "art", size=TILE)
    result = detect_image(art, tmp_path / "img.npy", lambda d: None,
                          DetectConfig(overlap=40, conf=0.5, overview=True))
    assert result.overview_boxes == 0  # 36 px: the 40-px overlap lets the tiles see it whole


def test_overview_of_an_image_within_one_tile_adds_nothing(tmp_path):
    np.save(tmp_path / "img.npy", squares_image(40, 50, [(20, 30)]))
    art = make_detector_artifact(tmp_path / "art", size=TILE)
    got, sink = _collect()
    result = detect_image(art, tmp_path / "img.npy", sink, DetectConfig(overlap=OVERLAP, conf=0.5, overview=True))
    assert result.overview_boxes == 0
    np.testing.assert_allclose(_boxes(got), expected_boxes([(20, 30)]), atol=1e-4)


@pytest.mark.parametrize("module", ["edgekit.detect.execute", "edgekit.tiling.execute"])
def test_tiled_paths_load_no_convert_or_profile_module(module):
    """The run-time path sits below convert and profile: importing it loads neither (checked in a fresh process)."""
    import json
    import subprocess
    import sys

    code = (f"import json, sys, {module}\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('edgekit.convert', 'edgekit.profile')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_decode_and_merge_run_in_their_own_threads(tmp_path, monkeypatch):
    """Read, infer, decode and merge overlap: decoding and merging are not on the caller's thread."""
    import threading

    import edgekit.detect.execute as execute

    seen = {"decode": set(), "sink": set()}
    real_decode = execute.decode

    def spy(*args, **kwargs):
        seen["decode"].add(threading.current_thread().name)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(execute, "decode", spy)
    corners = [(5, 5), (150, 20), (280, 40)]
    np.save(tmp_path / "img.npy", squares_image(300, 64, corners))
    art = make_detector_artifact(tmp_path / "art", size=TILE)
    got = []

    def sink(det):
        seen["sink"].add(threading.current_thread().name)
        got.append(det)

    result = detect_image(art, tmp_path / "img.npy", sink, DetectConfig(overlap=OVERLAP, conf=0.5))
    assert seen == {"decode": {"box-decoder"}, "sink": {"box-merger"}}
    assert result.boxes == 3 and [float(d.boxes[0, 1]) for d in got] == [5.0, 150.0, 280.0]
