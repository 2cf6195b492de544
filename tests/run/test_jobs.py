"""Inputs -> jobs: folders, recursion, lists, globs; outputs mirror relative paths and never collide."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import InputError
from edgekit.run.jobs import RunSettings, find_scenes, jobs_for


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_folder_recursive_keeps_relative_paths(tmp_path):
    _touch(tmp_path / "in" / "top.jpg", tmp_path / "in" / "a" / "s.tif", tmp_path / "in" / "b" / "s.tif",
           tmp_path / "in" / "notes.md")
    root, flat = find_scenes(tmp_path / "in")
    assert [p.name for p in flat] == ["top.jpg"]
    root, scenes = find_scenes(tmp_path / "in", recursive=True)
    jobs = jobs_for(root, scenes, tmp_path / "out", RunSettings(probabilities=True))
    assert [j.rel for j in jobs] == ["a/s.tif", "b/s.tif", "top.jpg"]
    assert [j.outputs.mask.relative_to(tmp_path / "out").as_posix() for j in jobs] == ["a/s.tif", "b/s.tif", "top.tif"]
    assert jobs[0].outputs.probabilities == tmp_path / "out" / "a" / "s.probs.tif"
    assert jobs[0].outputs.preview is None


def test_list_file_and_glob(tmp_path):
    _touch(tmp_path / "x" / "a" / "1.png", tmp_path / "x" / "b" / "1.png", tmp_path / "x" / "b" / "2.npy")
    listing = tmp_path / "x" / "scenes.txt"
    listing.write_text("# two scenes\na/1.png\n\n" + str(tmp_path / "x" / "b" / "1.png") + "\n")
    root, scenes = find_scenes(listing)
    jobs = jobs_for(root, scenes, tmp_path / "out", RunSettings())
    assert [j.rel for j in jobs] == ["a/1.png", "b/1.png"]
    assert jobs[1].outputs.mask == tmp_path / "out" / "b" / "1.png"
    root, scenes = find_scenes(f"{tmp_path}/x/**/*.npy")
    assert [j.rel for j in jobs_for(root, scenes, tmp_path / "out", RunSettings())] == ["b/2.npy"]


def test_errors_name_the_problem(tmp_path):
    _touch(tmp_path / "in" / "s.jpg", tmp_path / "in" / "s.tif")
    root, scenes = find_scenes(tmp_path / "in")
    with pytest.raises(InputError, match="would both write"):
        jobs_for(root, scenes, tmp_path / "out", RunSettings())
    listing = tmp_path / "l.txt"
    listing.write_text("in/s.tif\nin/missing.tif\n")
    with pytest.raises(InputError, match="1 missing file"):
        find_scenes(listing)
    with pytest.raises(InputError, match="not a folder"):
        find_scenes(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        find_scenes(tmp_path / "empty")


def test_a_detector_writes_boxes_named_after_each_scene(tmp_path):
    from edgekit.detect.execute import DetectConfig
    from edgekit.errors import ConfigError
    from edgekit.run.ledger import sidecar_path

    _touch(tmp_path / "in" / "a" / "s.tif", tmp_path / "in" / "b" / "s.png")
    root, scenes = find_scenes(tmp_path / "in", recursive=True)
    settings = RunSettings(DetectConfig(overlap=16), preview=True, box_format="geojson")
    jobs = jobs_for(root, scenes, tmp_path / "out", settings)
    assert [j.outputs.path.relative_to(tmp_path / "out").as_posix() for j in jobs] == ["a/s.geojson", "b/s.geojson"]
    assert jobs[0].outputs.preview == tmp_path / "out" / "a" / "s.preview.png" and jobs[0].outputs.jsonl is None
    assert sidecar_path(jobs[1].outputs) == tmp_path / "out" / "b" / "s.geojson.run.json"
    assert settings.task == "detection" and settings.key()["format"] == "geojson"
    assert RunSettings(DetectConfig(conf=0.3)).key() != RunSettings(DetectConfig(conf=0.4)).key()
    _touch(tmp_path / "flat" / "s.tif", tmp_path / "flat" / "s.png")  # masks would differ (.tif, .png); boxes not
    with pytest.raises(InputError, match="would both write"):
        jobs_for(*find_scenes(tmp_path / "flat"), tmp_path / "out", settings)
    with pytest.raises(ConfigError, match="--probabilities applies to segmentation"):
        RunSettings(DetectConfig(), probabilities=True)
    with pytest.raises(ConfigError, match="coco, geojson, gpkg, jsonl"):
        RunSettings(DetectConfig(), box_format="shp")
