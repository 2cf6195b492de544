"""`edgekit sweep --precision fp32,bf16`: the bf16 row runs on OpenVINO in bfloat16 and is scored so."""
from __future__ import annotations

import json

import pytest

from edgekit import machine
from edgekit.cli.main import main
from tests.conftest import image_sets, write_recipe

pytest.importorskip("openvino")


@pytest.mark.skipif(not machine.cpu_bf16(), reason="this CPU has neither AVX-512 BF16 nor AMX")
def test_a_bf16_row_says_its_runtime_and_is_scored_in_bf16(tmp_path, capsys, monkeypatch):
    from safetensors.torch import save_file

    import edgekit.optimize.evaluate as evaluate

    from edgekit.nets.factory import model_from_recipe
    from edgekit.recipes import load_recipe

    untrained = write_recipe(tmp_path)
    model = model_from_recipe(load_recipe(untrained), weights=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    trained = write_recipe(tmp_path, "tiny_trained", checkpoint="w.safetensors")
    calib, val = image_sets(tmp_path / "images", train=4, val=4)
    scored, accuracy = [], evaluate.Evaluator.accuracy

    def recorded(self, path, precision="fp32"):
        scored.append(precision)
        return accuracy(self, path, precision)

    monkeypatch.setattr(evaluate.Evaluator, "accuracy", recorded)
    code = main(["sweep", str(trained), "--precision", "fp32,bf16", "--calib", str(calib), "--val", str(val),
                 "--duration", "0.2", "--json", str(tmp_path / "s.json"), "--markdown", str(tmp_path / "s.md")])
    assert code == 0, capsys.readouterr().err
    rows = {r["precision"]: r for r in json.loads((tmp_path / "s.json").read_text())["rows"]}
    assert rows["bf16"]["runtime"] == "openvino" and rows["fp32"]["runtime"] in ("onnxruntime", "openvino")
    assert all(0 <= r["accuracy"] <= 100 for r in rows.values())
    assert scored == ["bf16"]  # the bf16 row scored computing in bf16; FP32's is its own reference
    assert "openvino" in (tmp_path / "s.md").read_text()
