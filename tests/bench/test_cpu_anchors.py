"""bench/cpu_anchors.py: its table, its section of docs/benchmarks.md and its turns, without building anything."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("cpu_anchors", ROOT / "bench" / "cpu_anchors.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cpu_anchors"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _variant(name: str, ms: float, metric: float) -> dict:
    return {"name": name, "runtime": "openvino", "execution": "f32", "note": "", "ms": ms, "metric": metric,
            "metric_name": "top-1 vs ground truth", "agreement": 1.0, "images": 32}


def _row(anchors) -> dict:
    return {"model": "m", "size": [224, 224], "task": "classification", "truth": "the labels", "runs": 5, "load_before_timing": [1.0, 1.5, 2.0],
            "failed": {"bf16": "edgekit: error: loses 3.12 points"}, "nncf_seconds": 4.0,
            "variants": [_variant("edgekit int8", 5.0, 1.0), _variant("NNCF int8 (OpenVINO defaults)", 4.0, 0.9),
                         _variant(anchors.PLAIN, 10.0, 1.0)]}


def test_table_gives_speed_ups_against_the_plain_export_and_the_verdict_against_nncf():
    anchors = _module()
    text = "\n".join(anchors._table(_row(anchors)))
    assert "| edgekit int8 | openvino (f32) | 5.0 | 2.00x | 100.00 |" in text
    assert "| NNCF int8 (OpenVINO defaults) | openvino (f32) | 4.0 | 2.50x | 90.00 |" in text
    assert "| edgekit bf16 | not built |" in text and "loses 3.12 points" in text
    assert "runs at 0.80x NNCF's speed, +10.00 points" in text and "1.0/1.5/2.0" in text


def test_the_section_is_replaced_and_the_rest_of_the_file_kept(tmp_path: Path):
    anchors = _module()
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n## Before\n\nkeep me\n\n## After\n\nand me\n")
    anchors.write_section(md, anchors.SECTION + "\n\nfirst\n")
    anchors.write_section(md, anchors.SECTION + "\n\nsecond\n")
    text = md.read_text()
    assert text.count(anchors.SECTION) == 1 and "second" in text and "first" not in text
    assert "keep me" in text and "and me" in text


def test_each_turn_times_the_second_of_two_back_to_back_runs():
    anchors = _module()
    calls = []

    class Fake:
        def __init__(self, name: str):
            self.name = name

        def input_specs(self):
            return [type("Spec", (), {"name": "x"})()]

        def infer(self, feed):
            calls.append(self.name)
            return {"y": feed["x"]}

    ms = anchors.time_in_turns([Fake("a"), Fake("b")], np.zeros(1), 3)
    assert len(ms) == 2 and all(m >= 0 for m in ms)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3  # one warm-up each, then turns of two runs


def test_a_trained_recipe_is_measured_as_the_demo_is_and_only_named_models_are_looked_for(tmp_path: Path):
    anchors = _module()
    recipe = tmp_path / "vit_trained.yaml"
    text = (ROOT / "edgekit" / "data" / "models" / "vit_s16_linear.yaml").read_text()
    recipe.write_text(text.replace("name: vit_s16_linear", "name: vit_trained").replace("[512, 512]", "[256, 256]"))
    # no zoo package is installed here: naming only the torch models must not look for them
    found = anchors.anchors(None, tmp_path, (recipe,), only=(anchors.DEMO, "vit_trained"))
    assert [a.name for a in found] == [anchors.DEMO, "vit_trained"]
    vit, demo = found[1], found[0]
    assert vit.source == str(recipe) and vit.size == (256, 256) and vit.torch
    assert (vit.calib, vit.val, vit.truth, vit.build_args) == (demo.calib, demo.val, demo.truth, demo.build_args)
    assert [a.name for a in anchors.anchors(None, tmp_path, (recipe,), only=("vit_trained",))] == ["vit_trained"]
