"""The engine cache, with a stand-in builder passed in (a function writing bytes; TensorRT is not
faked): the same key builds once, any change of what an engine depends on builds again."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from edgekit.artifact.layout import ENGINE_CACHE
from edgekit.artifact.manifest import TensorSpec
from edgekit.compile.engine import EngineSettings
from edgekit.compile.engine_cache import (KEEP, EngineCache, cache_line, carry_cache, engine_key,
                                          timing_cache_file)

DYNAMIC = (TensorSpec("input", ("N", 3, 32, 32)),)


class Builder:
    """Writes an 'engine' (bytes naming the call) where it is asked to, and counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dest: Path) -> None:
        self.calls += 1
        dest.write_bytes(f"engine #{self.calls}".encode())


@pytest.fixture
def onnx(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"graph v1")
    return path


def _key(onnx: Path, settings: EngineSettings = EngineSettings(precision="fp16", batch=(1, 4, 4)), **device):
    device = {"tensorrt": "10.3.0.30", "gpu_name": "Orin", "compute_capability": "8.7"} | device
    return engine_key(onnx, DYNAMIC, settings, device["tensorrt"], device["gpu_name"], device["compute_capability"])


def test_a_second_compile_with_the_same_key_builds_nothing(onnx: Path, tmp_path: Path):
    cache, build = EngineCache(tmp_path / ENGINE_CACHE), Builder()
    assert cache.engine(_key(onnx), tmp_path / "a.engine", build) is False
    assert cache.engine(_key(onnx), tmp_path / "b.engine", build) is True
    assert build.calls == 1 and (tmp_path / "b.engine").read_bytes() == b"engine #1"
    assert (tmp_path / "a.engine").stat().st_ino == (tmp_path / "b.engine").stat().st_ino  # linked, not copied


@pytest.mark.parametrize("change", [
    {"settings": EngineSettings(precision="int8", batch=(1, 4, 4))},
    {"settings": EngineSettings(precision="fp16", batch=(4, 4, 4))},
    {"settings": EngineSettings(precision="fp16", batch=(1, 4, 4), dla_core=0)},
    {"settings": EngineSettings(precision="fp16", batch=(1, 4, 4), workspace_mb=512)},
    {"settings": EngineSettings(precision="fp16", batch=(1, 4, 4), sparse_weights=True)},
    {"tensorrt": "10.3.0.26"}, {"gpu_name": "NVIDIA GeForce RTX 4090"}, {"compute_capability": "8.9"},
])
def test_whatever_the_engine_depends_on_changes_the_key_and_rebuilds(onnx: Path, tmp_path: Path, change: dict):
    cache, build = EngineCache(tmp_path / ENGINE_CACHE), Builder()
    cache.engine(_key(onnx), tmp_path / "a.engine", build)
    other = _key(onnx, **change)
    assert other.digest != _key(onnx).digest
    assert cache.engine(other, tmp_path / "b.engine", build) is False and build.calls == 2


def test_another_graph_rebuilds_and_the_timing_cache_does_not_count(onnx: Path, tmp_path: Path):
    before = _key(onnx)
    assert _key(onnx, EngineSettings(precision="fp16", batch=(1, 4, 4), timing_cache=tmp_path / "t")) == before
    onnx.write_bytes(b"graph v2")
    assert _key(onnx).onnx_sha256 != before.onnx_sha256 and _key(onnx).digest != before.digest


def test_a_static_engine_has_no_profile_in_its_key(onnx: Path):
    key = engine_key(onnx, (TensorSpec("input", (2, 3, 32, 32)),), EngineSettings(), "10.3.0.30", "Orin", "8.7")
    assert key.profile is None
    assert _key(onnx).profile == {"input": [[1, 3, 32, 32], [4, 3, 32, 32], [4, 3, 32, 32]]}
    assert json.loads(json.dumps(_key(onnx).to_dict())) == _key(onnx).to_dict()


def test_a_damaged_cached_engine_is_built_again(onnx: Path, tmp_path: Path):
    cache, build = EngineCache(tmp_path / ENGINE_CACHE), Builder()
    cache.engine(_key(onnx), tmp_path / "a.engine", build)
    cached = cache.lookup(_key(onnx))
    (tmp_path / "a.engine").unlink()  # the artifact's own link goes; the cached copy is damaged
    cached.write_bytes(b"truncated")
    assert cache.lookup(_key(onnx)) is None
    assert cache.engine(_key(onnx), tmp_path / "b.engine", build) is False and build.calls == 2


def test_rebuild_skips_the_lookup_and_no_folder_keeps_nothing(onnx: Path, tmp_path: Path):
    cache, build = EngineCache(tmp_path / ENGINE_CACHE), Builder()
    cache.engine(_key(onnx), tmp_path / "a.engine", build)
    assert cache.engine(_key(onnx), tmp_path / "b.engine", build, rebuild=True) is False and build.calls == 2
    assert cache.engine(_key(onnx), tmp_path / "c.engine", build) is True and build.calls == 2
    nothing = EngineCache(None)
    assert nothing.engine(_key(onnx), tmp_path / "d.engine", build) is False
    assert nothing.engine(_key(onnx), tmp_path / "e.engine", build) is False and build.calls == 4


def test_only_the_most_recently_used_engines_are_kept(onnx: Path, tmp_path: Path):
    cache, build = EngineCache(tmp_path / ENGINE_CACHE), Builder()
    keys = [_key(onnx, EngineSettings(precision="fp16", batch=(1, b, b))) for b in range(1, KEEP + 2)]
    for i, key in enumerate(keys):
        cache.engine(key, tmp_path / f"{i}.engine", build)
        time.sleep(0.01)
        if i == 0:
            first = key
    assert cache.lookup(first) is None  # the oldest went
    assert all(cache.lookup(k) is not None for k in keys[1:])
    assert len(list((tmp_path / ENGINE_CACHE / "engines").glob("*.engine"))) == KEEP


def test_carry_links_engines_copies_the_timing_cache_and_first_source_wins(onnx: Path, tmp_path: Path):
    old, src, work = tmp_path / "old", tmp_path / "src", tmp_path / "work"
    build = Builder()
    old.mkdir()
    EngineCache(old / ENGINE_CACHE).engine(_key(onnx), old / "model.engine", build)
    timing = timing_cache_file(old, "10.3.0.30", "Orin", "8.7")
    timing.write_bytes(b"tactics of old")
    (old / ENGINE_CACHE / "engines" / ".x.partial.json").write_text("{")  # a write that never finished
    other = timing_cache_file(src, "10.3.0.30", "Orin", "8.7")
    other.parent.mkdir(parents=True)
    other.write_bytes(b"tactics of src")
    work.mkdir()
    carry_cache((old, src, tmp_path / "absent"), work)
    carried = EngineCache(work / ENGINE_CACHE)
    engine = carried.lookup(_key(onnx))
    assert engine is not None and engine.stat().st_ino == (old / "model.engine").stat().st_ino
    moved = timing_cache_file(work, "10.3.0.30", "Orin", "8.7")
    assert moved.read_bytes() == b"tactics of old" and moved.stat().st_ino != timing.stat().st_ino
    assert not list((work / ENGINE_CACHE).rglob(".*"))
    assert carried.engine(_key(onnx), work / "model.engine", build) is True and build.calls == 1


def test_timing_cache_file_is_per_tensorrt_and_gpu(tmp_path: Path):
    path = timing_cache_file(tmp_path, "10.3.0.30", "NVIDIA GeForce RTX 4090", "8.9")
    assert path == tmp_path / ENGINE_CACHE / "timing-trt10.3.0.30-nvidia-geforce-rtx-4090-sm89.cache"
    assert timing_cache_file(tmp_path, "10.3.0.30", "Orin", "8.7") != path
    assert timing_cache_file(tmp_path, "8.5.2.2", None, None).name == "timing-trt8.5.2.2-gpu.cache"


def test_cache_line_says_whether_this_compile_built(onnx: Path, tmp_path: Path):
    cache, key = EngineCache(tmp_path / ENGINE_CACHE), _key(onnx)
    before = time.time()
    cache.engine(key, tmp_path / "a.engine", Builder())
    assert "built in" in cache_line(tmp_path, key.digest, before)
    assert "from the engine cache" in cache_line(tmp_path, key.digest, time.time() + 1)
    assert "nothing built" in cache_line(tmp_path, key.digest, time.time() + 1)
    assert "not in the engine cache" in cache_line(tmp_path, "0" * 32, before)
    record = cache.record(key.digest)
    assert record["key"] == key.to_dict() and record["build_seconds"] >= 0
    assert replace(key, dla_core=1).digest != key.digest
