"""The local backend, in process and with two worker processes."""
from __future__ import annotations

import pytest

from edgekit.run.local import LocalBackend
from tests.run import scenarios


@pytest.mark.parametrize("workers", [1, 2])
def test_outputs_match_infer_and_errors_stay_rows(tmp_path, workers):
    scenarios.outputs_match_infer_and_errors_stay_rows(tmp_path, lambda fn: LocalBackend(workers, 1, scene_fn=fn))


def test_a_scene_that_kills_its_worker_is_poisoned(tmp_path):
    scenarios.a_scene_that_kills_its_worker_is_poisoned(tmp_path, lambda fn: LocalBackend(2, 1, scene_fn=fn))


def test_cli_reports_failures_and_never_takes_its_outputs_for_scenes(tmp_path, capsys):
    from edgekit.cli.main import main
    from edgekit.run.ledger import read_rows
    from tests.run.scenes import corrupt_scene, make_cpu_artifact, make_scenes

    art = make_cpu_artifact(tmp_path / "art", size=64, batch=2)
    make_scenes(tmp_path / "in", geo=False)
    corrupt_scene(tmp_path / "in" / "bad.tif")
    args = ["run", str(art), str(tmp_path / "in"), "--recursive", "-o", str(tmp_path / "in" / "masks"),
            "--overlap", "16", "--no-progress"]
    assert main(args) == 1  # a scene failed: the run finishes, and says so in its exit code
    assert "7 scenes: 6 done, 0 skipped, 1 failed, 0 poisoned" in capsys.readouterr().out
    assert main(args) == 1
    assert "7 scenes: 0 done, 6 skipped, 1 failed" in capsys.readouterr().out
    assert read_rows(tmp_path / "in" / "masks")[-1]["kind"] == "summary"
    assert main([*args[:-3], "--overlap", "64"]) == 2  # a setting wrong for every scene stops the run at once
    assert "must be smaller than the 64x64 tile" in capsys.readouterr().err
