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
