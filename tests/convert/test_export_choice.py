"""The export stage keeps the faster verified graph, and its GELUs are in ORT's fused form."""
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgekit.convert.export import ExportSpec, export_onnx
from edgekit.convert.gelu_order import reorder_gelu
from edgekit.convert.onnx_check import count_nodes, run_onnx
from edgekit.errors import ConfigError


class GeluNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 4, 1), nn.GELU())

    def forward(self, x):
        return self.body(x)


def _node_counts(path):
    return sum(count_nodes(onnx.load(str(path))).values())


@pytest.mark.parametrize("slow", ["dynamo", "torchscript"])
def test_the_faster_exporter_is_kept(tmp_path, slow):
    """A fake timing makes one exporter's graph slower; the other is kept and both figures recorded."""
    seen = []

    def timing(paths):
        seen.extend(p.name for p in paths)  # each candidate's file is named after its exporter
        return [50.0 if f".{slow}." in p.name else 10.0 for p in paths]

    net = GeluNet().eval()
    out = export_onnx(net, tmp_path / "m.onnx", ExportSpec((16, 16)), timing=timing)
    kept = "torchscript" if slow == "dynamo" else "dynamo"
    assert len(seen) == 2 and sum(f".{slow}." in name for name in seen) == 1
    assert out.exporter == kept
    record = out.to_dict()
    assert record["chosen"] == kept
    assert record["candidates"][kept]["latency_ms"] == 10.0
    assert record["candidates"][slow]["latency_ms"] == 50.0
    assert out.nodes == _node_counts(out.path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # the other candidate is gone
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(run_onnx(out.path, x), net(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
    assert out.error.max_rel < 1e-5


def test_tensorrt_runtime_keeps_dynamo_untimed(tmp_path):
    def timing(paths):
        raise AssertionError("a TensorRT target is not timed on this machine")

    out = export_onnx(GeluNet().eval(), tmp_path / "m.onnx", ExportSpec((16, 16), runtime="tensorrt"), timing=timing)
    assert out.exporter == "dynamo" and [c.exporter for c in out.candidates] == ["dynamo"]
    assert "TensorRT" in out.chosen_by


def test_unknown_runtime_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="onnxruntime, openvino, tensorrt"):
        export_onnx(GeluNet().eval(), tmp_path / "m.onnx", ExportSpec((16, 16), runtime="tflite"))


def test_dynamo_gelus_are_reordered_into_the_form_ort_fuses(tmp_path):
    """The dynamo graph's GELUs become one fused Gelu each in ORT's optimized graph, outputs unchanged."""
    import onnxruntime as ort

    net = GeluNet().eval()
    x = torch.randn(1, 3, 16, 16)
    raw = tmp_path / "raw.onnx"
    torch.onnx.export(net, (x,), str(raw), dynamo=True, opset_version=18, input_names=["input"], external_data=False)
    model = onnx.load(str(raw))
    assert reorder_gelu(model) == 2
    fixed = tmp_path / "fixed.onnx"
    onnx.save(model, str(fixed))

    def fused(path):
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(path.with_suffix(".opt.onnx"))
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return count_nodes(onnx.load(opts.optimized_model_filepath))

    assert fused(raw)["Erf"] == 2 and fused(raw)["Gelu"] == 0
    assert fused(fixed)["Gelu"] == 2 and fused(fixed)["Erf"] == 0
    feed = x.numpy()
    np.testing.assert_allclose(run_onnx(fixed, feed), run_onnx(raw, feed), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(run_onnx(fixed, feed), net(x).numpy(), rtol=1e-4, atol=1e-5)
