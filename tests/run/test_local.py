"""The local backend, in process and with two worker processes."""
from __future__ import annotations

import pytest
import tifffile

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


def test_a_detector_writes_boxes_per_scene_resumes_and_poisons(tmp_path):
    scenarios.a_detector_writes_boxes_per_scene_resumes_and_poisons(
        tmp_path, lambda fn: LocalBackend(2, 1, scene_fn=fn))


def test_options_of_the_other_task_stop_in_one_line_and_write_nothing(tmp_path, capsys):
    from edgekit.cli.main import main
    from tests.detect.detect_fixtures import make_detector_artifact
    from tests.run.scenes import make_cpu_artifact, make_detection_scenes

    detector = make_detector_artifact(tmp_path / "det", size=64)
    segmenter = make_cpu_artifact(tmp_path / "seg", size=64)
    make_detection_scenes(tmp_path / "in")
    out = tmp_path / "out"
    for art, extra, message in ((detector, ["--blend", "linear"], "--blend apply to segmentation artifacts"),
                                (detector, ["--probabilities"], "--probabilities apply to segmentation artifacts"),
                                (segmenter, ["--format", "gpkg"], "--format apply to detection artifacts"),
                                (segmenter, ["--conf", "0.3"], "--conf apply to detection artifacts")):
        code = main(["run", str(art), str(tmp_path / "in"), "--recursive", "-o", str(out), *extra, "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
        assert not out.exists()


def test_a_segmenters_settings_with_a_detector_write_nothing(tmp_path):
    from edgekit.errors import ConfigError
    from edgekit.run.driver import run_scenes
    from edgekit.run.jobs import find_scenes, jobs_for
    from tests.detect.detect_fixtures import make_detector_artifact
    from tests.run.scenes import make_detection_scenes

    detector = make_detector_artifact(tmp_path / "det", size=64)
    make_detection_scenes(tmp_path / "in")
    root, found = find_scenes(tmp_path / "in", recursive=True)
    jobs = jobs_for(root, found, tmp_path / "out", scenarios.SETTINGS)
    with pytest.raises(ConfigError, match="takes segmentation artifacts; this artifact's task is detection"):
        run_scenes(detector, jobs, tmp_path / "out", scenarios.SETTINGS, LocalBackend(1, 1))
    assert not (tmp_path / "out").exists()


def test_boxes_as_geopackage_need_georeferenced_scenes(tmp_path, capsys):
    """--format gpkg: a GeoTIFF scene gets its GeoPackage in its own CRS; a plain one is an error row."""
    import sqlite3

    from edgekit.cli.main import main
    from edgekit.run.ledger import read_rows
    from tests.detect.detect_fixtures import make_detector_artifact, squares_image
    from tests.run.scenes import _geotiff

    detector = make_detector_artifact(tmp_path / "det", size=64)
    (tmp_path / "in").mkdir()
    _geotiff(tmp_path / "in" / "geo.tif", squares_image(150, 210, [(5, 5), (70, 130)]))
    tifffile.imwrite(tmp_path / "in" / "plain.tif", squares_image(150, 210, [(5, 5)]), photometric="rgb")
    out = tmp_path / "out"
    code = main(["run", str(detector), str(tmp_path / "in"), "-o", str(out), "--format", "gpkg", "--overlap", "16",
                 "--conf", "0.5", "--workers", "1", "--no-progress"])
    assert code == 1 and "2 scenes: 1 done, 0 skipped, 1 failed, 0 poisoned; 0.0 Mpx, 2 boxes" in (
        capsys.readouterr().out)
    with sqlite3.connect(out / "geo.gpkg") as db:
        assert db.execute("SELECT COUNT(*) FROM detections").fetchone()[0] == 2
        assert db.execute("SELECT organization_coordsys_id FROM gpkg_spatial_ref_sys WHERE organization = 'EPSG' "
                          "AND organization_coordsys_id = 32633").fetchone() == (32633,)
    error = next(r for r in read_rows(out) if r.get("status") == "error")
    assert error["path"] == "plain.tif" and "georeferenced" in error["error"] and not (out / "plain.gpkg").exists()
