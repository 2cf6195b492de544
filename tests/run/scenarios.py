"""What every backend must do, written once; test_local and test_ray run it with their backends."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import tifffile
from PIL import Image

from edgekit.detect.execute import DetectConfig, write_detections
from edgekit.detect.outputs import DetectionOutputs
from edgekit.run.driver import run_scenes
from edgekit.run.jobs import RunSettings, find_scenes, jobs_for
from edgekit.run.ledger import read_rows
from edgekit.run.scene import process_scene
from edgekit.tiling.execute import TileConfig, TileOutputs, infer_image
from tests.detect.detect_fixtures import expected_boxes, make_detector_artifact, squares_image
from tests.run.scenes import (coco_boxes, corrupt_scene, kill_on_poison, make_cpu_artifact, make_detection_scenes,
                              make_scenes)

SETTINGS = RunSettings(TileConfig(overlap=16), probabilities=True)
DETECT = RunSettings(DetectConfig(overlap=16, conf=0.5), preview=True)


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) if path.suffix == ".png" else tifffile.imread(path)


def _scene_rows(out: Path, run: int = -1) -> list[dict]:
    """The scene rows of one run (by default the last) in out/manifest.jsonl."""
    runs, rows = [], read_rows(out)
    for row in rows:
        if row["kind"] == "start":
            runs.append([])
        elif row["kind"] == "scene":
            runs[-1].append(row)
    return runs[run]


def no_partials(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".partial" in p.name]


def outputs_match_infer_and_errors_stay_rows(tmp_path: Path, backend: Callable) -> None:
    art = make_cpu_artifact(tmp_path / "art", size=64, batch=2)
    scenes = make_scenes(tmp_path / "in")
    corrupt_scene(tmp_path / "in" / "b" / "zz_bad.tif")
    out = tmp_path / "out"
    root, found = find_scenes(tmp_path / "in", recursive=True)
    jobs = jobs_for(root, found, out, SETTINGS)
    summary = run_scenes(art, jobs, out, SETTINGS, backend(process_scene))
    assert (summary.scenes, summary.done, summary.failed, summary.skipped) == (7, 6, 1, 0)
    bad = [r for r in _scene_rows(out) if r["status"] == "error"]
    assert [r["path"] for r in bad] == ["b/zz_bad.tif"] and "\n" not in bad[0]["error"] and bad[0]["error"]
    done = [r for r in _scene_rows(out) if r["status"] == "done"]
    assert all(r["tiles"] > 0 and r["mpx"] == 0.0315 and r["peak_rss_mb"] > 0 for r in done)
    (tmp_path / "ref").mkdir()
    for i, scene in enumerate(scenes):  # scene by scene against `infer` in this process
        ref = TileOutputs(tmp_path / "ref" / f"{i}{'.png' if scene.suffix == '.png' else '.tif'}",
                          tmp_path / "ref" / f"{i}.probs.tif")
        infer_image(art, scene, ref, TileConfig(overlap=16))
        job = next(j for j in jobs if j.image == scene)
        np.testing.assert_array_equal(_read(job.outputs.mask), _read(ref.mask))
        np.testing.assert_array_equal(_read(job.outputs.probabilities), _read(ref.probabilities))
    import rasterio

    with rasterio.open(out / "a" / "s1.tif") as geo:  # the GeoTIFF scene's mask keeps its georeferencing
        assert geo.crs.to_epsg() == 32633 and geo.transform.c == 500000
    assert no_partials(out)
    again = run_scenes(art, jobs, out, SETTINGS, backend(process_scene))
    assert (again.done, again.skipped, again.failed) == (0, 6, 1)
    other = RunSettings(TileConfig(overlap=8), probabilities=True)  # other settings: nothing is skipped
    changed = run_scenes(art, jobs_for(root, found, out, other), out, other, backend(process_scene))
    assert (changed.done, changed.skipped) == (6, 0)


def a_scene_that_kills_its_worker_is_poisoned(tmp_path: Path, backend: Callable) -> None:
    art = make_cpu_artifact(tmp_path / "art", size=64, batch=2)
    make_scenes(tmp_path / "in", geo=False)
    tifffile.imwrite(tmp_path / "in" / "a" / "poison.tif", np.zeros((100, 100, 3), np.uint8), photometric="rgb")
    out = tmp_path / "out"
    root, found = find_scenes(tmp_path / "in", recursive=True)
    jobs = jobs_for(root, found, out, SETTINGS)
    summary = run_scenes(art, jobs, out, SETTINGS, backend(kill_on_poison), max_attempts=2)
    assert (summary.done, summary.poisoned, summary.crashed, summary.failed) == (6, 1, 1, 0)
    poison = [(r["status"], r["attempt"]) for r in _scene_rows(out) if r["path"] == "a/poison.tif"]
    assert poison == [("crashed", 1), ("poisoned", 2)]
    assert not (out / "a" / "poison.tif").exists() and no_partials(out)
    again = run_scenes(art, jobs, out, SETTINGS, backend(kill_on_poison), max_attempts=2)
    assert (again.done, again.skipped, again.poisoned, again.crashed) == (0, 6, 1, 0)
    assert [r["status"] for r in _scene_rows(out) if r["path"] == "a/poison.tif"] == ["poisoned"]


def a_detector_writes_boxes_per_scene_resumes_and_poisons(tmp_path: Path, backend: Callable) -> None:
    """Boxes per scene (COCO, as `edgekit infer` writes them, with their preview), one row each with its
    box count; a scene that kills its worker is poisoned; a rerun skips what is done and retries nothing."""
    art = make_detector_artifact(tmp_path / "art", size=64)
    scenes = make_detection_scenes(tmp_path / "in")
    tifffile.imwrite(tmp_path / "in" / "a" / "poison.tif", squares_image(100, 100, []), photometric="rgb")
    out = tmp_path / "out"
    root, found = find_scenes(tmp_path / "in", recursive=True)
    jobs = jobs_for(root, found, out, DETECT)
    summary = run_scenes(art, jobs, out, DETECT, backend(kill_on_poison), max_attempts=2)
    assert (summary.done, summary.poisoned, summary.crashed, summary.failed) == (4, 1, 1, 0)
    assert summary.boxes == sum(len(c) for c in scenes.values())
    rows = {r["path"]: r for r in _scene_rows(out) if r["status"] == "done"}
    for job in jobs:
        if job.image.name == "poison.tif":
            assert not job.outputs.path.exists() and not job.outputs.preview.exists()
            continue
        np.testing.assert_allclose(coco_boxes(job.outputs.path), expected_boxes(scenes[job.image]), atol=0.01)
        assert rows[job.rel]["boxes"] == len(scenes[job.image]) and job.outputs.preview.stat().st_size > 0
    assert sorted(j.outputs.path.relative_to(out).as_posix() for j in jobs) == [
        "a/poison.json", "a/s0.json", "a/s1.json", "b/s0.json", "b/s2.json"]
    one = next(j for j in jobs if j.rel == "b/s0.tif")  # the same file `edgekit infer` writes
    write_detections(art, one.image, DetectionOutputs(tmp_path / "ref.json"), DETECT.tile)
    assert one.outputs.path.read_text() == (tmp_path / "ref.json").read_text()
    assert no_partials(out)
    again = run_scenes(art, jobs, out, DETECT, backend(kill_on_poison), max_attempts=2)
    assert (again.done, again.skipped, again.poisoned, again.crashed, again.boxes) == (0, 4, 1, 0, 0)
