"""The same tile as uint8, uint16 (x257), int16 (x100) and float32 (/255) GeoTIFFs, each with its
declared scale, gives the same model input on every path: calibration, verification's held-out
set, compare and infer. Feeds are captured where the runner receives them, and each path is seen
calling the one pixel map."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit.images.image_set import CalibrationSet
from edgekit.convert.verify_precision import verify_precision
from edgekit.evaluate import HeldOutSet
from edgekit.images import pixels as pixel_module
from edgekit.preprocess import Preprocess
from edgekit.profile import CompareConfig, TimingConfig, compare_artifacts
from edgekit.runtime.onnxrt import OnnxRuntimeRunner
from edgekit.tiling.execute import TileConfig, infer_image
from tests.conftest import declare_units, make_cpu_artifact

rasterio = pytest.importorskip("rasterio")

SIZE = 32
KINDS = {  # pixel type: (values from the uint8 tile, declared scale)
    "uint8": (lambda v: v, 255.0),
    "uint16": (lambda v: v.astype(np.uint16) * 257, 65535.0),
    "int16": (lambda v: v.astype(np.int16) * 100, 25500.0),
    "float32": (lambda v: v.astype(np.float32) / 255, 1.0),
}


def _geotiff(path: Path, pixels: np.ndarray) -> Path:
    from rasterio.transform import from_origin

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=pixels.shape[0], width=pixels.shape[1], count=3,
                       dtype=pixels.dtype.name, crs="EPSG:4326", transform=from_origin(10, 50, 0.01, 0.01)) as ds:
        ds.write(pixels.transpose(2, 0, 1))
    return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, tuple[Path, float]]:
    root = tmp_path_factory.mktemp("scenes")
    tile = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return {kind: (_geotiff(root / kind / "tile.tif", make(tile)), scale) for kind, (make, scale) in KINDS.items()}


@pytest.fixture
def captured(monkeypatch):
    """Every feed a runner receives, and every call of the one pixel map."""
    feeds, calls = [], []
    infer, model_input = OnnxRuntimeRunner.infer, pixel_module.PixelMap.model_input

    def recording_infer(self, feed):
        feeds.append(next(iter(feed.values())).copy())
        return infer(self, feed)

    def counted(self, raw, window=None):
        calls.append(raw.dtype.name)
        return model_input(self, raw, window)

    monkeypatch.setattr(OnnxRuntimeRunner, "infer", recording_infer)
    monkeypatch.setattr(pixel_module.PixelMap, "model_input", counted)
    return feeds, calls


def _calibration(path: Path, scale: float, tmp: Path) -> np.ndarray:
    return next(CalibrationSet(path.parent, (SIZE, SIZE), Preprocess(scale=scale)).batches())


def _verification(path: Path, scale: float, tmp: Path, feeds: list) -> np.ndarray:
    model = make_cpu_artifact(tmp / "ref", size=SIZE) / "model.onnx"
    held = HeldOutSet(CalibrationSet(path.parent, (SIZE, SIZE), Preprocess(scale=scale)))
    verify_precision(model, model, held, "segmentation", max_drop=100)
    return feeds[-1]


def _artifact(tmp: Path, scale: float) -> Path:
    return declare_units(make_cpu_artifact(tmp / "art", size=SIZE), scale)


def _compare(path: Path, scale: float, tmp: Path, feeds: list) -> np.ndarray:
    timing = TimingConfig(warmup_s=0, duration_s=0, iterations=1)
    compare_artifacts([_artifact(tmp, scale)], path.parent, config=CompareConfig(timing=timing, overlap=8))
    return feeds[0]


def _infer(path: Path, scale: float, tmp: Path, feeds: list) -> np.ndarray:
    infer_image(_artifact(tmp, scale), path, tmp / "mask.tif", TileConfig(overlap=8))
    return feeds[-1]


@pytest.mark.parametrize("path_name", ["calibration", "verification", "compare", "infer"])
def test_every_pixel_type_gives_the_same_model_input(scenes, captured, tmp_path, path_name):
    feeds, calls = captured
    inputs = {}
    for kind, (path, scale) in scenes.items():
        feeds.clear()
        calls.clear()
        work = tmp_path / kind
        work.mkdir()
        if path_name == "calibration":
            inputs[kind] = _calibration(path, scale, work)
        else:
            inputs[kind] = {"verification": _verification, "compare": _compare, "infer": _infer}[path_name](
                path, scale, work, feeds)
        assert calls and set(calls) == {kind}, f"{path_name} did not go through PixelMap.model_input"
        shutil.rmtree(work)
    reference = inputs["uint8"]
    assert reference.shape == (1, 3, SIZE, SIZE) and reference.std() > 0.5
    np.testing.assert_array_equal(inputs["uint16"], reference)
    np.testing.assert_array_equal(inputs["int16"], reference)
    np.testing.assert_allclose(inputs["float32"], reference, rtol=0, atol=1e-5)  # /255 stored in float32


def test_all_paths_feed_the_runner_the_same_input(scenes, captured, tmp_path):
    feeds, _ = captured
    path, scale = scenes["uint16"]
    got = [_calibration(path, scale, tmp_path)]
    for i, run in enumerate((_verification, _compare, _infer)):
        feeds.clear()
        work = tmp_path / str(i)
        work.mkdir()
        got.append(run(path, scale, work, feeds))
    for other in got[1:]:
        np.testing.assert_array_equal(other, got[0])
