"""Formatting and plots of real (tiny) reports: every artifact and batch appears, files are valid."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from edgekit.profile import CompareConfig, ProfileConfig, TimingConfig, compare_artifacts, profile_artifact
from edgekit.profile.format import compare_markdown, compare_table, profile_markdown, profile_tables, write_json
from edgekit.profile.plot import plot_compare, plot_profile
from tests.profile.profile_fixtures import (image_folder, make_cpu_artifact, name_classes, three_artifacts,  # noqa: F401
                                           write_masks)

FAST = TimingConfig(warmup_s=0.02, duration_s=0, iterations=8)
PNG = b"\x89PNG\r\n\x1a\n"


def _render(renderable) -> str:
    console = Console(record=True, width=160)
    console.print(renderable)
    return console.export_text()


def test_compare_outputs(three_artifacts, image_folder, tmp_path: Path):
    report = compare_artifacts(three_artifacts, image_folder, config=CompareConfig(timing=FAST, overlap=8))
    md = compare_markdown(report)
    rows = [line for line in md.splitlines() if line.startswith("| tiny_")]  # the main table, then IoU per class
    assert [r.split("|")[1].strip() for r in rows] == ["tiny_fp32", "tiny_fp16", "tiny_seed1"] * 2
    assert "100.00%" in rows[0] and "mIoU vs ref" in md
    text = _render(compare_table(report))
    assert all(name in text for name in ("tiny_fp32", "tiny_fp16", "tiny_seed1"))
    data = json.loads(write_json(report, tmp_path / "c.json").read_text())
    assert len(data["results"]) == 3 and len(data["results"][0]["samples_ms"]) == 8
    png = plot_compare(report, tmp_path / "c.png")
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000


def test_compare_tables_name_each_class(three_artifacts, image_folder, tmp_path: Path):
    """Per-class IoU tables, a column per class named as the artifacts name them, in Markdown, the
    terminal and the JSON, read back from the files."""
    name_classes(three_artifacts[0], ("water", "land", "cloud"))
    masks = write_masks(image_folder, tmp_path / "masks")
    report = compare_artifacts(three_artifacts, image_folder, masks, config=CompareConfig(timing=FAST, overlap=8))
    md = (tmp_path / "c.md")
    md.write_text(compare_markdown(report))
    lines = md.read_text().splitlines()
    for title, field in (("IoU per class vs ref:", "class_iou_vs_reference"), ("IoU per class (truth):", "class_iou")):
        at = lines.index(title)
        assert lines[at + 2] == "| artifact | water | land | cloud |"
        rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in lines[at + 4:at + 7]}
        for r in report.results:
            assert rows[r.name] == [f"{100 * v:.2f}%" if v is not None else "-" for v in getattr(r, field)]
    assert set(lines[lines.index("IoU per class vs ref:") + 4].split("|")[2:-1]) <= {" 100.00% ", " - "}
    text = _render(compare_table(report))
    assert "IoU per class (truth)" in text and all(n in text for n in ("water", "land", "cloud"))
    data = json.loads(write_json(report, tmp_path / "c.json").read_text())
    assert data["class_names"] == ["water", "land", "cloud"]
    assert data["results"][2]["class_iou"] == [pytest.approx(v) for v in report.results[2].class_iou]


def test_profile_outputs(tmp_path: Path):
    folder = make_cpu_artifact(tmp_path / "a", size=16, batch="N")
    report = profile_artifact(folder, ProfileConfig(batches=(1, 2), timing=FAST, layers=True, top=3, layer_runs=2))
    text = "\n".join(_render(part) for part in profile_tables(report))
    for words in ("end-to-end", "compute-only", "CUDA graphs: no", "p99", "top 3 layers", "no tegrastats"):
        assert words in text
    md = profile_markdown(report)
    assert md.count("\n| 1 |") == 2 and md.count("\n| 2 |") == 2  # latency and throughput rows per batch
    data = json.loads(write_json(report, tmp_path / "p.json").read_text())
    assert [b["batch"] for b in data["batches"]] == [1, 2] and data["layers"]["source"] == "onnxruntime"
    assert plot_profile(report, tmp_path / "p.png").read_bytes()[:8] == PNG
