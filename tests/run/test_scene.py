"""What a worker needs: a GPU for TensorRT and for ONNX Runtime's GPU providers, whether the manifest or --backend asks."""
from __future__ import annotations

from edgekit.artifact.folder import load_artifact
from edgekit.run.scene import needs_gpu
from tests.run.scenes import make_cpu_artifact


def test_gpu_backends_ask_ray_for_a_gpu(tmp_path):
    art = load_artifact(make_cpu_artifact(tmp_path / "art", size=32))
    assert not needs_gpu(art) and not needs_gpu(art, "onnxruntime") and not needs_gpu(art, "openvino")
    assert all(needs_gpu(art, b) for b in ("tensorrt", "onnxruntime-cuda", "onnxruntime-trt"))
