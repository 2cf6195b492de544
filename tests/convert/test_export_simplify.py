
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgekit.convert.export import ExportSpec, export_onnx
from edgekit.convert.onnx_check import load_checked, run_onnx
from edgekit.convert.simplify import simplify_onnx
from edgekit.errors import ArtifactError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))

    def forward(self, x):
        y = self.body(x)
        return y * 1.0 + torch.zeros_like(y)  # redundant ops a simplifier removes


def test_export_static_batch_matches_torch(tmp_path):
    net = Net().eval()
    out = export_onnx(net, tmp_path / "m.onnx", ExportSpec((32, 32), batch=1))
    model = onnx.load(str(out.path))
    assert model.opset_import[0].version >= 17
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 32]
    assert out.error.max_rel < 1e-5
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(run_onnx(out.path, x), net(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_export_dynamic_batch_runs_other_batches(tmp_path):
    net = Net().eval()
    out = export_onnx(net, tmp_path / "d.onnx", ExportSpec((16, 16), batch=None))
    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(run_onnx(out.path, x), net(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_simplify_drops_nodes_and_keeps_outputs(tmp_path):
    exported = export_onnx(Net().eval(), tmp_path / "m.onnx", ExportSpec((32, 32)))
    result = simplify_onnx(exported.path, tmp_path / "s.onnx")
    assert result.tool in ("onnxsim", "onnxslim")
    assert result.nodes_after < result.nodes_before
    assert result.error.max_abs < 1e-5


def test_simplify_falls_back_to_the_next_tool(tmp_path):
    exported = export_onnx(Net().eval(), tmp_path / "m.onnx", ExportSpec((32, 32)))
    result = simplify_onnx(exported.path, tmp_path / "s.onnx", tools=("nonexistent", "onnxsim"))
    assert result.tool == "onnxsim" and "nonexistent failed" in result.notes


class GeluNet(nn.Module):
    """Conv -> GELU -> Conv: the GELU's trailing 0.5 sits before a convolution it could be folded into."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.b(nn.functional.gelu(self.a(x)))


def _ort_ops(path, tmp_path):
    import onnxruntime as ort
    from collections import Counter

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "ort.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(str(tmp_path / "ort.onnx")).graph.node)


@pytest.mark.parametrize("tool", ["onnxslim", "onnxsim"])
def test_simplified_gelu_is_still_fused_by_onnx_runtime(tmp_path, tool):
    exported = export_onnx(GeluNet().eval(), tmp_path / "m.onnx", ExportSpec((16, 16)))
    assert _ort_ops(exported.path, tmp_path)["Gelu"] == 1
    simple = simplify_onnx(exported.path, tmp_path / "s.onnx", tools=(tool,))
    ops = _ort_ops(simple.path, tmp_path)
    assert ops["Gelu"] == 1 and ops["Erf"] == 0


def test_truncated_onnx_is_a_clear_error(tmp_path):
    exported = export_onnx(Net().eval(), tmp_path / "m.onnx", ExportSpec((32, 32)))
    data = exported.path.read_bytes()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="not a valid ONNX"):
        load_checked(bad)
    assert not (tmp_path / "s.onnx").exists()
