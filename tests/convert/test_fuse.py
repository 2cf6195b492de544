"""ONNX Runtime's transformer fusions on a tiny ViT: verified equal, kept only when faster."""
import numpy as np
import pytest
import torch

from edgekit.convert.export import ExportSpec, export_onnx
from edgekit.convert.fuse import fuse_transformer, has_attention
from edgekit.convert.onnx_check import count_nodes, load_checked, random_input, run_onnx
from edgekit.convert.simplify import simplify_onnx


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=3).eval()
    folder = tmp_path_factory.mktemp("vit")
    exported = export_onnx(net, folder / "exported.onnx", ExportSpec((32, 32)), timing=lambda ps: [1.0] * len(ps))
    return simplify_onnx(exported.path, folder / "vit.onnx").path  # the graph the build fuses: simplified


def test_fused_vit_is_equal_and_kept_when_faster(tiny_vit, tmp_path):
    assert has_attention(load_checked(tiny_vit))
    result = fuse_transformer(tiny_vit, tmp_path / "f.onnx", timing=lambda ps: [20.0, 10.0])
    assert result.kept and result.path == tmp_path / "f.onnx"
    assert result.fused.get("SkipLayerNormalization", 0) >= 12  # two per block, 12 blocks
    ops = count_nodes(load_checked(result.path))
    assert ops["SkipLayerNormalization"] == result.fused["SkipLayerNormalization"]
    assert result.nodes_after < result.nodes_before
    feed = random_input(load_checked(tiny_vit))
    np.testing.assert_allclose(run_onnx(result.path, feed), run_onnx(tiny_vit, feed), rtol=1e-4, atol=1e-4)
    assert result.error.max_rel < 1e-3
    assert result.latency_ms == {"unfused": 20.0, "fused": 10.0}


def test_fused_graph_is_dropped_when_not_faster(tiny_vit, tmp_path):
    result = fuse_transformer(tiny_vit, tmp_path / "f.onnx", timing=lambda ps: [10.0, 12.0])
    assert not result.kept and result.path == tiny_vit
    assert not (tmp_path / "f.onnx").exists()
    assert "not faster" in result.reason


def test_fused_graph_is_dropped_when_outputs_differ(tiny_vit, tmp_path):
    # the fusions are exact on ORT (error 0.0), so only an impossible tolerance exercises this branch
    result = fuse_transformer(tiny_vit, tmp_path / "f.onnx", rtol=-1.0, timing=lambda ps: [20.0, 10.0])
    assert not result.kept and "differs" in result.reason and not (tmp_path / "f.onnx").exists()


def test_convnet_has_no_attention(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    out = export_onnx(net, tmp_path / "c.onnx", ExportSpec((16, 16)), timing=lambda ps: [1.0] * len(ps))
    assert not has_attention(load_checked(out.path))
