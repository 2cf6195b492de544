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
from tests.run.scenarios import _scene_rows, no_partials
from tests.run.scenes import make_cpu_artifact

REPO = Path(__file__).resolve().parents[2]


def _cli(art: Path, scenes: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "run", str(art), str(scenes), "-o", str(out),
                             "--workers", "2", "--threads", "1", "--overlap", "16", "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_rerun_after_sigkill_does_only_what_is_missing(tmp_path):
    art = make_cpu_artifact(tmp_path / "art", size=64, batch=2)
    scenes = tmp_path / "in"
    scenes.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        tifffile.imwrite(scenes / f"s{i}.tif", rng.integers(0, 256, (1200, 1200, 3), np.uint8), photometric="rgb")
    out = tmp_path / "out"
    first = _cli(art, scenes, out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if sum(r.get("status") == "done" for r in read_rows(out)) >= 2:
            break
        time.sleep(0.02)
    assert first.poll() is None, f"the run ended before it could be killed: {first.communicate()}"
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = {r["path"] for r in _scene_rows(out) if r["status"] == "done"}
    assert 2 <= len(killed) < 6
    time.sleep(0.5)  # the workers die with the driver (PR_SET_PDEATHSIG)

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
