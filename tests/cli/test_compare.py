"""`edgekit compare` through the CLI root: table and files, and one-line errors with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.cli.main import main


def _fixtures():
    from tests.profile import profile_fixtures

    return profile_fixtures


FIX = _fixtures()
FAST = ["--warmup", "0.02", "--duration", "0.05", "--overlap", "8"]


@pytest.fixture
def setup(tmp_path: Path):
    a = FIX.make_cpu_artifact(tmp_path / "fp32", size=32)
    b = FIX.round_weights_fp16(FIX.make_cpu_artifact(tmp_path / "fp16", size=32))
    images = FIX.write_images(tmp_path / "images", count=2)
    return [str(a), str(b)], images


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_compare_table_json_markdown_plot(setup, tmp_path, capsys):
    arts, images = setup
    masks = FIX.write_masks(images, tmp_path / "masks")
    code = main(["compare", *arts, "--images", str(images), "--masks", str(masks), *FAST,
                 "--json", str(tmp_path / "c.json"), "--markdown", str(tmp_path / "c.md"), "--plot", str(tmp_path / "c.png")])
    assert code == 0
    out = capsys.readouterr().out
    assert "fp32" in out and "fp16" in out and "mIoU gt" in out
    final = out.splitlines()[-1]  # the line --quiet keeps
    assert final.startswith("2 artifacts on ") and "against fp32: fp32 p50 " in final and "; fp16 p50 " in final
    data = json.loads((tmp_path / "c.json").read_text())
    assert [r["name"] for r in data["results"]] == ["fp32", "fp16"] and data["ground_truth"] is True
    assert "| fp16 |" in (tmp_path / "c.md").read_text()
    assert (tmp_path / "c.png").stat().st_size > 0


def test_no_images(setup, tmp_path, capsys):
    arts, _ = setup
    (tmp_path / "empty").mkdir()
    assert main(["compare", *arts, "--images", str(tmp_path / "empty"), *FAST]) == 2
    assert "holds no images" in _error_line(capsys)


def test_missing_artifact(setup, tmp_path, capsys):
    arts, images = setup
    assert main(["compare", arts[0], str(tmp_path / "gone"), "--images", str(images), *FAST]) == 2
    assert "does not exist" in _error_line(capsys)


def test_masks_of_wrong_size(setup, tmp_path, capsys):
    arts, images = setup
    masks = FIX.write_masks(images, tmp_path / "masks", hw=(8, 8))
    assert main(["compare", *arts, "--images", str(images), "--masks", str(masks), *FAST]) == 2
    assert "must match their image" in _error_line(capsys)


def test_masks_with_unknown_classes(setup, tmp_path, capsys):
    arts, images = setup
    masks = FIX.write_masks(images, tmp_path / "masks", value=9)
    assert main(["compare", *arts, "--images", str(images), "--masks", str(masks), *FAST]) == 2
    assert "labels [9]" in _error_line(capsys)


def test_batch_larger_than_fixed(setup, capsys):
    arts, images = setup
    assert main(["compare", *arts, "--images", str(images), "--batch", "8", *FAST]) == 2
    assert "batch 1 only" in _error_line(capsys)
