"""2:4 sparsity: the pattern proved on exported weights, kept through training, refused on the cpu
target, carried from `edgekit compress --sparsity 2:4` to the TensorRT build's manifest."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

pytest.importorskip("modelopt.torch.sparsity")

from edgekit.compress import sparsity  # noqa: E402


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 8, 1), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 16))


def test_a_dense_network_has_no_sparse_layer():
    check = sparsity.check_pattern(_net())
    assert check.layers == 3 and check.sparse_layers == 0 and len(check.dense) == 3


def test_sparsified_and_trained_weights_keep_the_pattern():
    model = sparsity.sparsify(_net())
    x = torch.randn(4, 16, 8, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):  # the mask holds while the weights move
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    exported = sparsity.export(model)
    check = sparsity.check_pattern(exported)
    assert all(type(m) in (nn.Conv2d, nn.Linear, nn.ReLU, nn.Flatten) for m in exported)
    assert check.sparse_layers >= 2 and "0" not in check.dense and "2" not in check.dense
    assert check.zero_fraction == pytest.approx(0.5, abs=0.01)
    w = exported[0].weight.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    assert int((w != 0).sum(1).max()) <= 2


def test_sparsity_on_the_cpu_target_is_refused_before_any_work(tiny_recipe, tmp_path):
    from edgekit.compress.pipeline import CompressConfig, compress
    from edgekit.compress.search import Goal
    from edgekit.errors import ConfigError

    with pytest.raises(ConfigError, match="sparse tensor cores") as info:
        compress(str(tiny_recipe), tmp_path / "out", Goal(max_drop=1.0, speedup=1.1),
                 CompressConfig(images=tmp_path / "missing", val=tmp_path / "missing", sparsity="2:4"))
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_engine_settings_take_sparse_weights_from_the_manifest(tmp_path):
    from edgekit.artifact.manifest import Manifest, TensorSpec
    from edgekit.compile.stage import CompileSettings, engine_settings
    from edgekit.targets import load_target

    target = load_target("jetson-orin-nx")
    m = Manifest(target=target.name, backend="tensorrt", precision="fp16", model_file="model.onnx",
                 inputs=(TensorSpec("input", (1, 3, 64, 64)),), outputs=(TensorSpec("logits", (1, 3, 64, 64)),),
                 session={"tensorrt": {"workspace_mb": 512, "sparse_weights": True}})
    assert engine_settings(m, target, CompileSettings()).sparse_weights is True
    dense = m.evolve(session={"tensorrt": {"workspace_mb": 512}})
    assert engine_settings(dense, target, CompileSettings()).sparse_weights is False


@pytest.mark.slow
def test_compress_with_sparsity_builds_for_tensorrt_with_sparse_weights(tiny_recipe, tmp_path):
    pytest.importorskip("torch_pruning")
    import yaml

    from edgekit.cli.main import main
    from edgekit.artifact.compressed import load_compressed
    from edgekit.convert.pipeline import BuildConfig, build
    from tests.conftest import image_sets

    train, val = image_sets(tmp_path, masks=False)
    out = tmp_path / "sparse"
    code = main(["compress", str(tiny_recipe), "--images", str(train), "--val", str(val), "-o", str(out),
                 "--target", "jetson-orin-nx", "--no-cache", "--steps", "3", "--train-batch", "2", "--latency-runs", "1",
                 "--max-drop", "100", "--max-size", "0.9", "--sparsity", "2:4"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    sparse = report["changes"]["sparsity"]
    assert sparse["pattern"] == "2:4" and sparse["sparse_layers"] > 0 and sparse["zero_fraction"] >= 0.45
    assert "measured there, not here" in (out / "report.md").read_text()
    assert yaml.safe_load((out / "compress.yaml").read_text())["model"]["sparsity"] == "2:4"
    check = sparsity.check_pattern(load_compressed(out / "compress.yaml"))
    assert check.sparse_layers == sparse["sparse_layers"]  # the saved module holds the pattern it reports
    result = build(str(out), tmp_path / "engine", BuildConfig(target="jetson-orin-nx", precision="fp16", val=val,
                                                              latency_runs=0))
    assert result.manifest.session["tensorrt"]["sparse_weights"] is True
