"""`edgekit profile` through the CLI root: output files, and one-line errors with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.cli.main import main


def _fixtures():
    from tests.profile import profile_fixtures

    return profile_fixtures


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return _fixtures().make_cpu_artifact(tmp_path / "art", size=16)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_profile_writes_json_markdown_and_plot(artifact, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["profile", str(artifact), "--iterations", "10", "--warmup", "0.02", "--layers", "--top", "2",
                 "--json", str(out / "p.json"), "--markdown", str(tmp_path / "p.md"), "--plot", str(out / "p.png")])
    assert code == 0
    text = capsys.readouterr().out
    assert "end-to-end latency" in text and "top 2 layers" in text
    assert text.splitlines()[-1].startswith(f"{artifact} (onnxruntime, fp32): batch 1 p50 ")  # the final line
    data = json.loads((out / "p.json").read_text())
    assert data["batches"][0]["end_to_end"]["count"] == 10
    assert (tmp_path / "p.md").read_text().startswith("- artifact")
    assert (out / "p.png").stat().st_size > 0


def test_missing_artifact(tmp_path, capsys):
    assert main(["profile", str(tmp_path / "nope")]) == 2
    assert "does not exist" in _error_line(capsys)


def test_batch_beyond_fixed_batch(artifact, capsys):
    assert main(["profile", str(artifact), "--batches", "1,4", "--iterations", "3"]) == 2
    assert "takes batch 1 only" in _error_line(capsys)


def test_bad_batch_list(artifact, capsys):
    assert main(["profile", str(artifact), "--batches", "one"]) == 2
    assert "comma-separated integers" in _error_line(capsys)


def test_artifact_for_a_device_without_an_engine(artifact, capsys):
    assert main(["profile", str(artifact), "--backend", "tensorrt"]) == 2
    assert "no engine yet" in _error_line(capsys)
