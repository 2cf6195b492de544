"""`edgekit sweep` on two tiny recipes, end to end (build, profile, table, JSON, Markdown, plot)."""
from __future__ import annotations

import json

from edgekit.cli.main import main
from edgekit.sweep import SweepReport, SweepRow, pareto_front
from tests.conftest import write_recipe


def test_sweep_two_tiny_recipes(tmp_path, capsys):
    a = write_recipe(tmp_path, "tiny_convnext", "test_convnext", "fpn", 64)
    b = write_recipe(tmp_path, "tiny_resnet", "test_resnet", "linear", 64)
    out = tmp_path / "sweep"
    code = main(["sweep", str(a), str(b), "--input-size", "64", "--duration", "0.2", "--plot", str(out) + ".png",
                 "--json", str(out) + ".json", "--markdown", str(out) + ".md"])
    assert code == 0, capsys.readouterr().err
    final = capsys.readouterr().out.splitlines()[-1]  # the line --quiet keeps
    rows = json.loads((tmp_path / "sweep.json").read_text())["rows"]
    best = min(rows, key=lambda r: r["p50_ms"])
    assert final.startswith(f"2 artifacts on cpu; fastest: {best['recipe']} fp32 at 64x64, p50 ")
    assert {(r["recipe"], tuple(r["input_hw"])) for r in rows} == {(n, (s, s)) for n in ("tiny_convnext", "tiny_resnet") for s in (64,)}
    assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["mpx_s"] > 0 and r["params"] > 0 for r in rows)
    assert all(r["accuracy"] is None and r["accuracy_note"] == "speed only" for r in rows)
    assert (tmp_path / "sweep.md").read_text().count("speed only") == 2
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_artifacts_are_timed_in_turns(tmp_path, monkeypatch):
    """All artifacts are built first, then round after round each is timed once (a, b, a, b), so a
    machine's drifting load falls on every row alike."""
    import edgekit.profile
    from edgekit.sweep import SweepConfig, sweep

    a = write_recipe(tmp_path, "tiny_convnext", "test_convnext", "fpn", 64)
    b = write_recipe(tmp_path, "tiny_resnet", "test_resnet", "linear", 64)
    calls, real = [], edgekit.profile.profile_artifact

    def recording(folder, config):
        calls.append(folder.name.split("-")[0])
        return real(folder, config)

    monkeypatch.setattr(edgekit.profile, "profile_artifact", recording)
    report = sweep([str(a), str(b)], SweepConfig(sizes=((64, 64),), duration_s=0.2, rounds=2, warmup_s=0.05))
    assert calls == ["tiny_convnext", "tiny_resnet", "tiny_convnext", "tiny_resnet"]
    assert [r.recipe for r in report.rows] == ["tiny_convnext", "tiny_resnet"]
    assert all(r.p99_ms >= r.p50_ms > 0 for r in report.rows)


def test_int8_without_calibration_is_a_one_line_error(tmp_path, capsys):
    a = write_recipe(tmp_path)
    assert main(["sweep", str(a), "--precision", "fp32,int8"]) == 2
    err = capsys.readouterr().err
    assert "--calib" in err and err.count("\n") == 1
    assert main(["sweep", str(a), "--rounds", "0"]) == 2
    assert "timing round" in capsys.readouterr().err


def test_pareto_front():
    points = [(10, 80.0), (5, 70.0), (20, 85.0), (12, 75.0), (5, 60.0)]
    assert pareto_front(points, higher_is_better=True) == [1, 0, 2]
    assert pareto_front([(1, 5.0), (2, 1.0), (3, 2.0)], higher_is_better=False) == [0, 1]


def test_markdown_says_speed_only_for_untrained_rows():
    rows = (SweepRow("m", "fp32", (64, 64), 2.0, 3.0, 1.5, 0.4, 1000, None),
            SweepRow("n", "int8", (64, 64), 1.0, 1.5, 3.0, 0.1, 1000, 91.5))
    text = SweepReport("cpu", "test cpu", rows).to_markdown()
    assert "speed only" in text and "91.50 mIoU" in text


def test_a_compressed_output_is_scored_when_its_source_was_trained(tmp_path):
    """`edgekit compress` outputs carry no checkpoint of their own: their source recipe says whether they
    were trained (the DINOv3 bench sweeps a compressed ViT beside its trained original)."""
    from safetensors.torch import save_file

    from edgekit.artifact.compressed import write_output
    from edgekit.nets.factory import model_from_recipe
    from edgekit.recipes import load_recipe
    from edgekit.sweep import SweepConfig, sweep
    from tests.conftest import image_sets

    untrained = write_recipe(tmp_path)
    model = model_from_recipe(load_recipe(untrained), weights=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    trained = write_recipe(tmp_path, "tiny_trained", checkpoint="w.safetensors")
    _, val = image_sets(tmp_path / "images", train=1, val=2)
    outputs = {}
    for recipe in (trained, untrained):
        folder = tmp_path / f"{recipe.stem}_small"
        folder.mkdir()
        write_output(folder, model, load_recipe(recipe), str(recipe), "prune25", {"family": "cnn"})
        outputs[recipe.stem] = folder
    report = sweep([str(outputs["tiny_trained"]), str(outputs["tiny_fpn"])],
                   SweepConfig(val=val, duration_s=0.2, warmup_s=0.1))
    by_name = {r.recipe: r for r in report.rows}
    assert 0 <= by_name["tiny_trained_small"].accuracy <= 100
    assert by_name["tiny_fpn_small"].accuracy is None


def test_a_detector_is_swept_and_scored_by_map_against_its_first_row_s_boxes(tmp_path, capsys):
    """A YOLOv8-layout ONNX, no --task: the rule makes it a detector; its int8 row is scored with COCO
    mAP@0.5 against the fp32 row's boxes on the validation images (the scorer of optimize and compare)."""
    from tests.detect.detect_fixtures import square_finder_onnx, squares_calib_val

    squares_calib_val(tmp_path, 4, seed=0)
    model = square_finder_onnx(tmp_path / "squares.onnx", size=64)
    code = main(["sweep", str(model), "--precision", "fp32,int8", "--calib", str(tmp_path / "calib"), "--val",
                 str(tmp_path / "val"), "--duration", "0.1", "--rounds", "1", "--json", str(tmp_path / "s.json"),
                 "--markdown", str(tmp_path / "s.md")])
    assert code == 0, capsys.readouterr().err
    fp32, int8 = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert fp32["accuracy"] == 100.0 and fp32["accuracy_note"] == "mAP50 vs fp32's boxes"  # the reference itself
    assert int8["accuracy_note"] == "mAP50 vs fp32's boxes" and 0.0 <= int8["accuracy"] <= 100.0
    assert "mAP50" in (tmp_path / "s.md").read_text() and "mIoU" not in (tmp_path / "s.md").read_text()
