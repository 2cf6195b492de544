"""The one tile plan: segmentation and detection read, preview, skip and batch tiles the same way."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from tiling_reference import declare_units, make_cpu_artifact

from edgekit.artifact.folder import load_artifact
from edgekit.cli.main import main
from edgekit.images import open_image
from edgekit.runtime.open import open_runner
from edgekit.images.geometry import axis_starts
from edgekit.tiling.plan import plan_tiles
from edgekit.tiling.preview import Preview
from tests.detect.detect_fixtures import make_detector_artifact


def _infer(*args) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = main(["infer", *map(str, args), "--overlap", "16", "--no-progress"])
    return code, buf.getvalue()


def test_detector_and_segmenter_preview_the_model_bands(tmp_path):
    """A 4-band file with --bands 3,2,1: both previews show bands 3, 2, 1 (detection's showed 1, 2, 3)."""
    pixels = np.random.default_rng(0).integers(0, 200, (96, 112, 4), dtype=np.uint8)  # no bright squares: no boxes
    np.save(tmp_path / "four.npy", pixels)
    segmenter = declare_units(make_cpu_artifact(tmp_path / "seg", size=64), 255, (3, 2, 1))
    detector = declare_units(make_detector_artifact(tmp_path / "det", size=64), 255, (3, 2, 1))
    for art, output, preview in ((segmenter, "mask.tif", "seg.png"), (detector, "boxes.json", "det.png")):
        code, out = _infer(art, tmp_path / "four.npy", "-o", tmp_path / output, "--preview", tmp_path / preview)
        assert code == 0, out
    model_bands = pixels[..., [2, 1, 0]]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "det.png")), model_bands)
    from edgekit.artifact.manifest import read_manifest

    overlay = Preview(96, 112, classes=read_manifest(segmenter).classes)  # the segmenter's overlay, its legend
    overlay.image[:] = model_bands
    overlay.mask[:] = tifffile.imread(tmp_path / "mask.tif")
    overlay.save(tmp_path / "expected.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "seg.png")),
                                  np.asarray(Image.open(tmp_path / "expected.png")))


@pytest.fixture(scope="module")
def plan_of(tmp_path_factory):
    """(plan, source) of a 150x170 image with a nodata tile, for the tiny segmenter at batch 4."""
    root = tmp_path_factory.mktemp("plan")
    art = load_artifact(make_cpu_artifact(root / "art", size=64, batch=4))
    pixels = np.random.default_rng(1).integers(1, 256, (150, 170, 3), dtype=np.uint8)
    pixels[:64, :64] = 0  # the first tile holds nothing but nodata
    tifffile.imwrite(root / "nd.tif", pixels, photometric="rgb", extratags=[(42113, "s", 0, "0", True)])
    with open_runner(art) as runner, open_image(root / "nd.tif") as source:
        yield plan_tiles(art.manifest, runner, source, overlap=16), source


def test_batches_and_bands_cover_every_window_in_order(plan_of):
    plan, source = plan_of
    rows, cols = axis_starts(150, 64, 16), axis_starts(170, 64, 16)
    every = [(r, c) for r in rows for c in cols]
    flat = list(plan.batches(source))
    assert [(w.row, w.col) for b in flat for w in b.windows] == every
    assert flat[0].skipped and flat[0].windows[0] == plan.layout.windows().__next__()
    assert [len(b.windows) for b in flat if not b.skipped] == [4, 4, 3]  # 11 tiles; batches span rows
    banded = [(row, list(band)) for row, band in plan.bands(source)]
    assert [row for row, _ in banded] == rows
    for row, band in banded:
        assert all(w.row == row for b in band for w in b.windows)
        assert [w.col for b in band for w in b.windows] == cols


def test_feed_pads_a_short_batch_and_keeps_its_tiles(plan_of):
    plan, source = plan_of
    last = list(plan.batches(source))[-1]
    feed = plan.feed(last.tiles)
    (name, x), = feed.items()
    assert name == "input" and x.shape == (4, 3, 64, 64) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:3], last.tiles)
    assert not x[3].any()


def test_a_window_reads_through_the_pixel_map(plan_of):
    plan, source = plan_of
    win = next(plan.layout.windows())
    x, valid = plan.read(source, win)
    raw = source.read(win.row, win.col, win.height, win.width)
    expected, expected_valid = plan.pixels.model_input(raw, win)
    np.testing.assert_array_equal(x, expected)
    assert valid is not None and not valid.any() and (valid == expected_valid).all()


def test_wrong_task_stops_in_one_line(tmp_path):
    from edgekit.detect.execute import DetectConfig, detect_image
    from edgekit.errors import ConfigError
    from edgekit.tiling.execute import infer_image

    np.save(tmp_path / "img.npy", np.zeros((80, 80, 3), np.uint8))
    detector = make_detector_artifact(tmp_path / "det", size=64)
    segmenter = make_cpu_artifact(tmp_path / "seg", size=64)
    with pytest.raises(ConfigError, match="takes segmentation artifacts; this artifact's task is detection") as err:
        infer_image(detector, tmp_path / "img.npy", tmp_path / "mask.tif")
    assert "\n" not in str(err.value) and not (tmp_path / "mask.tif").exists()
    with pytest.raises(ConfigError, match="takes detection artifacts; this artifact's task is segmentation"):
        detect_image(segmenter, tmp_path / "img.npy", lambda d: None, DetectConfig(overlap=16))
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["det", "img.npy", "seg"]
