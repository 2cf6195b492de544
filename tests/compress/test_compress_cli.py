"""`edgekit compress` end to end on a tiny recipe: output, report, cache reuse, refusal, then `edgekit build`."""
import json

import pytest

pytest.importorskip("torch_pruning")

from edgekit.cli.main import main  # noqa: E402


@pytest.fixture
def image_sets(tmp_path):
    from tests.conftest import image_sets as make

    return make(tmp_path)


def _args(recipe, sets, out, cache, *goal):
    return ["compress", str(recipe), "--images", str(sets[0]), "--val", str(sets[1]), "-o", str(out),
            "--cache", str(cache), "--steps", "4", "--train-batch", "2", "--latency-runs", "1", "--max-drop", "100", *goal]


@pytest.mark.slow
def test_compress_writes_a_buildable_model_and_reuses_its_figures(tiny_recipe, image_sets, tmp_path, capsys):
    from edgekit.convert.pipeline import BuildConfig, build

    out, cache = tmp_path / "small", tmp_path / "cache"
    assert main(_args(tiny_recipe, image_sets, out, cache, "--max-size", "0.9")) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["after"]["size_mb"] <= 0.9 < report["before"]["size_mb"]
    holding = [c for c in report["candidates"] if not c["misses"]]
    assert holding and all(c["figures"]["size_mb"] <= 0.9 for c in holding)
    assert report["plan"] == max(holding, key=lambda c: c["figures"]["macs"])["plan"]  # least compressed first
    assert report["after"]["params"] < report["before"]["params"]
    assert report["accuracy"]["metric"] == "mIoU vs ground truth" and report["recovery"]["curve"]
    assert report["cache"]["misses"] == 1  # the original and every plan, exported and timed in turns: one entry
    assert "## Recovery" in (out / "report.md").read_text() and (out / "compress.yaml").is_file()

    again = tmp_path / "again"
    assert main(_args(tiny_recipe, image_sets, again, cache, "--max-size", "0.9")) == 0
    second = json.loads((again / "report.json").read_text())
    assert second["cache"]["misses"] == 0 and second["after"] == report["after"]  # nothing measured twice

    fp32 = build(str(out), tmp_path / "fp32", BuildConfig(latency_runs=1))
    assert fp32.complete and fp32.manifest.source["kind"] == "compressed"
    int8 = build(str(out), tmp_path / "int8", BuildConfig(precision="int8", calib=image_sets[0], calib_samples=2,
                                                          latency_runs=1, target=_lenient(tmp_path)))
    assert int8.complete


def _lenient(folder):
    import yaml

    path = folder / "lenient.yaml"
    path.write_text(yaml.safe_dump({"name": "lenient", "kind": "cpu", "backend": "onnxruntime", "max_accuracy_drop": 100.0}))
    return str(path)


def test_infeasible_goal_exits_1_and_writes_nothing(tiny_recipe, image_sets, tmp_path, capsys):
    out = tmp_path / "none"
    assert main(_args(tiny_recipe, image_sets, out, tmp_path / "cache", "--max-size", "0.001")) == 1  # a check failed, not bad input
    err = capsys.readouterr().err
    assert "no level-1 plan meets the goal" in err and "best reachable" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".none*"))


def test_tampered_module_is_refused(tmp_path):
    import torch
    import yaml

    from edgekit.artifact.compressed import load_compressed
    from edgekit.errors import SourceError

    torch.save(torch.nn.Conv2d(3, 3, 1), tmp_path / "model.pt")
    (tmp_path / "compress.yaml").write_text(yaml.safe_dump({"model": {"compressed": "model.pt", "sha256": "0" * 64}}))
    with pytest.raises(SourceError, match="refused"):
        load_compressed(tmp_path / "compress.yaml")


def test_a_detector_is_refused_in_one_line_before_anything_is_read(tiny_recipe, image_sets, tmp_path, capsys):
    """By --task over a segmentation recipe (with the override's warning), and by a recipe saying detection."""
    import yaml

    detector = tmp_path / "det.yaml"
    detector.write_text(yaml.safe_dump(yaml.safe_load(tiny_recipe.read_text()) | {"task": "detection"}))
    for recipe, extra in ((tiny_recipe, ["--task", "detection"]), (detector, [])):
        out = tmp_path / "small"
        assert main(_args(recipe, (tmp_path / "nowhere", image_sets[1]), out, tmp_path / "cache", "--speedup", "2",
                          *extra)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("edgekit: error: edgekit compress recovers a pruned network by distilling its class scores")
        assert "edgekit build SOURCE --task detection" in err and "\n" not in err and "nowhere" not in err
        assert not out.exists()


@pytest.mark.slow
def test_one_large_image_is_cut_into_tiles_chosen_by_the_original(tiny_recipe, image_sets, tmp_path):
    """--images big.png: the tiles the recovery used are in the report, as many as asked, each a
    different place of the image, with the classes they cover beside the image's."""
    import numpy as np
    from PIL import Image

    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (256, 320, 3), dtype=np.uint8)).save(big)
    out = tmp_path / "small"
    assert main(_args(tiny_recipe, (big, image_sets[1]), out, tmp_path / "cache", "--max-size", "0.9",
                      "--train-samples", "6")) == 0
    report = json.loads((out / "report.json").read_text())
    tiles = report["recovery"]["tiles"]
    assert tiles["tiles"] == 6 and len({tuple(w[:2]) for w in tiles["windows"]}) == 6
    assert all(w[2:] == [64, 64] and w[0] + 64 <= 256 and w[1] + 64 <= 320 for w in tiles["windows"])
    assert len(tiles["class_shares"]) == 4 and abs(sum(tiles["class_shares"]) - 1) < 1e-6  # 3 classes + unsure
    assert "tiles of " + str(big) in (out / "report.md").read_text()
