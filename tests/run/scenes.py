"""Scenes and worker wrappers shared by the run tests (module-level, so spawned workers can import them)."""
from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import numpy as np
import tifffile

from edgekit.run.scene import process_scene


def make_cpu_artifact(folder: Path, **kw) -> Path:
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("edgekit_tests_root_conftest_run", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_cpu_artifact(folder, **kw)


def make_scenes(root: Path, shape=(150, 210), geo: bool = True) -> list[Path]:
    """Six scenes in two sub-folders with the same names (a/s0.tif and b/s0.tif), one PNG, one GeoTIFF."""
    rng = np.random.default_rng(0)
    paths = []
    for sub in ("a", "b"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
            path = root / sub / (f"s{i}.png" if (sub, i) == ("b", 2) else f"s{i}.tif")
            if path.suffix == ".png":
                from PIL import Image

                Image.fromarray(pixels).save(path)
            elif geo and (sub, i) == ("a", 1):
                _geotiff(path, pixels)
            else:
                tifffile.imwrite(path, pixels, tile=(32, 32), photometric="rgb")
            paths.append(path)
    return paths


def _geotiff(path: Path, pixels: np.ndarray) -> None:
    import rasterio
    from rasterio.transform import from_origin

    h, w, _ = pixels.shape
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(500000, 4600000, 0.5, 0.5)) as ds:
        ds.write(pixels.transpose(2, 0, 1))


def corrupt_scene(path: Path) -> Path:
    """A TIFF whose header promises an image that is not there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    return path


def kill_on_poison(job, worker) -> dict:
    """Like process_scene, but a scene named poison* kills its worker process outright (SIGKILL)."""
    if job.image.name.startswith("poison"):
        os.kill(os.getpid(), signal.SIGKILL)
    return process_scene(job, worker)


def make_detection_scenes(root: Path, shape=(150, 210)) -> dict[Path, list[tuple[int, int]]]:
    """Four scenes of bright 9-px squares (a/s0.tif, a/s1.png, b/s0.tif, b/s2.npy), some across tile
    borders, and the top-left corners of each one's squares: what a detector must find."""
    from PIL import Image

    from tests.detect.detect_fixtures import squares_image

    layouts = {"a/s0.tif": [(5, 5), (40, 60), (100, 150)], "a/s1.png": [(50, 40), (120, 190)],
               "b/s0.tif": [(10, 100), (44, 44), (70, 130), (130, 10)], "b/s2.npy": [(60, 60)]}
    scenes = {}
    for rel, corners in layouts.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = squares_image(*shape, corners)
        if path.suffix == ".png":
            Image.fromarray(pixels).save(path)
        elif path.suffix == ".npy":
            np.save(path, pixels)
        else:
            tifffile.imwrite(path, pixels, photometric="rgb")
        scenes[path] = corners
    return scenes


def coco_boxes(path: Path) -> np.ndarray:
    """x1, y1, x2, y2 of a COCO file's annotations, sorted by (y1, x1)."""
    import json

    annotations = json.loads(path.read_text())["annotations"]
    b = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)], np.float32).reshape(-1, 4)
    return b[np.lexsort((b[:, 0], b[:, 1]))]
