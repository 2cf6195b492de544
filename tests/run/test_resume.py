"""A driver killed with SIGKILL mid-run, then rerun: only what is missing is done, nothing partial stays."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from edgekit.run.ledger import Ledger, read_rows, remove_partials
from edgekit.run.jobs import RunSettings, SceneJob
from edgekit.tiling.execute import TileConfig, TileOutputs, infer_image
from tests.detect.detect_fixtures import expected_boxes, make_detector_artifact, squares_image
from tests.run.scenarios import _scene_rows, no_partials
from tests.run.scenes import coco_boxes, make_cpu_artifact

REPO = Path(__file__).resolve().parents[2]


def _cli(art: Path, scenes: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "run", str(art), str(scenes), "-o", str(out),
                             "--workers", "2", "--threads", "1", "--overlap", "16", "--no-progress", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_after(run: subprocess.Popen, out: Path, done: int) -> set[str]:
    """SIGKILL the driver once ``done`` scenes are recorded; the scenes it finished."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if sum(r.get("status") == "done" for r in read_rows(out)) >= done:
            break
        time.sleep(0.02)
    assert run.poll() is None, f"the run ended before it could be killed: {run.communicate()}"
    run.send_signal(signal.SIGKILL)
    run.wait()
    time.sleep(0.5)  # the workers die with the driver (PR_SET_PDEATHSIG)
    return {r["path"] for r in _scene_rows(out) if r["status"] == "done"}


@pytest.mark.slow
def test_rerun_after_sigkill_does_only_what_is_missing(tmp_path):
    art = make_cpu_artifact(tmp_path / "art", size=64, batch=2)
    scenes = tmp_path / "in"
    scenes.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        tifffile.imwrite(scenes / f"s{i}.tif", rng.integers(0, 256, (1200, 1200, 3), np.uint8), photometric="rgb")
    out = tmp_path / "out"
    killed = _kill_after(_cli(art, scenes, out), out, 2)
    assert 2 <= len(killed) < 6

    second = _cli(art, scenes, out)
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr
    rows = _scene_rows(out)
    redone = {r["path"] for r in rows if r["status"] == "done"}
    assert redone == {f"s{i}.tif" for i in range(6)} - killed
    assert {r["path"] for r in rows if r["status"] == "skipped"} == killed
    assert no_partials(out) and len(list(out.glob("*.run.json"))) == 6
    assert read_rows(out)[-1]["kind"] == "summary" and read_rows(out)[-1]["done"] == len(redone)
    for i in (0, 5):  # the first and the last scene, as one process writes them
        ref = tmp_path / f"ref{i}.tif"
        infer_image(art, scenes / f"s{i}.tif", TileOutputs(ref), TileConfig(overlap=16))
        np.testing.assert_array_equal(tifffile.imread(out / f"s{i}.tif"), tifffile.imread(ref))


@pytest.mark.slow
def test_a_detector_run_resumes_after_sigkill(tmp_path):
    """Four scenes of squares, 4356 tiles each: killed after the first scene, rerun: every scene has one
    ``done`` row over both runs, finished ones are skipped, and every COCO file holds every square."""
    art = make_detector_artifact(tmp_path / "art", size=64)
    scenes = tmp_path / "in"
    scenes.mkdir()
    corners = [(r, c) for r in range(7, 1100, 101) for c in range(11, 1100, 97)]
    for i in range(4):
        tifffile.imwrite(scenes / f"s{i}.tif", squares_image(1100, 1100, corners), photometric="rgb")
    out = tmp_path / "out"
    options = ("--overlap", "48", "--conf", "0.5", "--format", "coco")  # 48 of 64 px: many tiles, a slow scene
    killed = _kill_after(_cli(art, scenes, out, *options), out, 1)
    assert 1 <= len(killed) < 4

    second = _cli(art, scenes, out, *options)
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr
    assert f"4 scenes: {4 - len(killed)} done, {len(killed)} skipped" in stdout
    rows = [r for r in read_rows(out) if r["kind"] == "scene"]
    done = [r["path"] for r in rows if r["status"] == "done"]
    assert sorted(done) == [f"s{i}.tif" for i in range(4)]  # once each, over both runs
    assert {r["path"] for r in _scene_rows(out) if r["status"] == "skipped"} == killed
    assert no_partials(out) and len(list(out.glob("*.json.run.json"))) == 4
    for i in range(4):
        np.testing.assert_allclose(coco_boxes(out / f"s{i}.json"), expected_boxes(corners), atol=0.01)


def test_a_torn_last_line_and_stale_partials_are_cleaned(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").write_text('{"kind": "start"}\n{"kind": "scene", "path": "a.tif", "sta')
    job = SceneJob(tmp_path / "a.tif", "a.tif", TileOutputs(out / "a.tif", out / "a.probs.tif"))
    stale = [out / ".a.x1y2.partial.tif", out / ".a.probs.k3.partial.tif", out / ".a.tif.run.q.partial.json"]
    for p in stale:
        p.write_bytes(b"half")
    keep = out / ".b.zz.partial.tif"  # not one of this run's outputs
    keep.write_bytes(b"other")
    assert remove_partials([job]) == 3 and not any(p.exists() for p in stale) and keep.exists()
    with Ledger(out, {"artifact": "x", "settings": RunSettings().key()}) as ledger:
        ledger.scene({"path": "a.tif", "status": "crashed", "attempt": 1})
    rows = read_rows(out)
    assert [r["kind"] for r in rows] == ["start", "scene"] and rows[-1]["status"] == "crashed"
    with Ledger(out, {"artifact": "x", "settings": RunSettings().key()}) as ledger:
        assert ledger.crashes("a.tif") == 1
    with Ledger(out, {"artifact": "y", "settings": RunSettings().key()}) as ledger:
        assert ledger.crashes("a.tif") == 0  # another artifact: attempts start again
