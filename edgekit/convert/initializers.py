"""Graph surgery before quantization: initializers shared by several nodes copied for each."""
from __future__ import annotations

__all__ = ["unshared_initializers"]

from pathlib import Path


def unshared_initializers(onnx_in: Path, out: Path) -> Path:
    """``onnx_in``, or a copy at ``out`` in which every initializer read by several nodes is copied
    for each of them; returns the file to quantize.

    Simplifiers merge equal constants, so two GroupNorms (InstanceNormalization in the dynamo
    graph) come to share one scale vector. ORT's QDQ quantizer then asks the second reader to
    share the first's quantization parameters and stops: "Quantization parameter shared mode is
    not supported for weight yet" (MobileViTv2). One copy per reader costs a few bytes of vectors.
    """
    import onnx

    model = onnx.load(str(onnx_in))
    graph = model.graph
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in set(node.input):
            readers.setdefault(name, []).append(node)
    shared = {init.name: init for init in graph.initializer if len(readers.get(init.name, ())) > 1}
    if not shared:
        return Path(onnx_in)
    for name, init in shared.items():
        for k, node in enumerate(readers[name][1:], start=1):
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = f"{name}__edgekit_copy{k}"
            graph.initializer.append(copy)
            for i, value in enumerate(node.input):
                if value == name:
                    node.input[i] = copy.name
    onnx.save(model, str(out))
    return Path(out)
