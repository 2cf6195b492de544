"""Which layers of an engine run on the DLA and which fell back to the GPU, read from hand-written
engine-inspector JSON in TensorRT's documented layout (``Layers``, ``Bindings``; per layer ``Name``,
``LayerType``, ``Inputs``/``Outputs``, ``Metadata`` from 8.6 on)."""
from __future__ import annotations

import json

import pytest

from edgekit.compile.placement import LayerPlacement, layer_device, layer_placement
from edgekit.errors import ArtifactError

RS = "\x1e"  # TensorRT's separator between the ONNX nodes of one layer's Metadata


def _io(name: str, fmt: str = "Row major linear FP16 format") -> dict:
    return {"Name": name, "Location": "Device", "Dimensions": [1, 16, 64, 64], "Format/Datatype": fmt}


# TensorRT 10 on DLA core 0, GPU fallback: one DLA subgraph, a Resize left on the GPU, a Myelin
# (GPU) subgraph, and the glue TensorRT adds (copies to and from DLA memory, a reformat).
DLA_ENGINE = {
    "Layers": [
        {"Name": "input to nvm", "LayerType": "Reformat", "Inputs": [_io("input")], "Outputs": [_io("input to nvm")],
         "Metadata": "", "TacticName": "", "StreamId": 0},
        {"Name": "{ForeignNode[/stem/conv/Conv.../stage1/act/Relu]}", "LayerType": "DLA",
         "Inputs": [_io("input to nvm")], "Outputs": [_io("/stage1/act/Relu_output_0")],
         "Metadata": f"[ONNX Layer: /stem/conv/Conv]{RS}[ONNX Layer: /stage1/act/Relu]", "TacticName": "", "StreamId": 0},
        {"Name": "input copy finish", "LayerType": "FinishNvmRegion", "Inputs": [], "Outputs": [], "Metadata": ""},
        {"Name": "Reformatting CopyNode for Input Tensor 0 to /up/Resize", "LayerType": "Reformat",
         "Inputs": [_io("x")], "Outputs": [_io("y")], "Metadata": ""},
        {"Name": "/up/Resize", "LayerType": "Resize", "Inputs": [_io("y")], "Outputs": [_io("z")],
         "Metadata": "[ONNX Layer: /up/Resize]", "TacticName": "", "StreamId": 0},
        {"Name": "{ForeignNode[/head/attn/MatMul.../head/attn/Softmax]}", "LayerType": "Myelin",
         "Inputs": [_io("z")], "Outputs": [_io("logits")],
         "Metadata": f"[ONNX Layer: /head/attn/MatMul]{RS}[ONNX Layer: /head/attn/Softmax]{RS}[ONNX Layer: /up/Resize]"},
    ],
    "Bindings": ["input", "logits"],
}

# TensorRT 8.5 (JetPack 5): no Metadata; DLA glue told by its names.
DLA_ENGINE_85 = {
    "Layers": [
        {"Name": "data to nvm", "LayerType": "Reformat", "Inputs": [_io("data")], "Outputs": [_io("data to nvm")]},
        {"Name": "{ForeignNode[Conv_0...Relu_5]}", "LayerType": "DLA", "Inputs": [], "Outputs": []},
        {"Name": "data copy finish", "LayerType": "FinishNvmRegion", "Inputs": [], "Outputs": []},
        {"Name": "prob from nvm", "LayerType": "Reformat", "Inputs": [], "Outputs": []},
        {"Name": "Softmax_12", "LayerType": "SoftMax", "Inputs": [], "Outputs": []},
    ],
    "Bindings": ["data", "prob"],
}


def test_dla_subgraphs_fallbacks_and_glue_on_tensorrt_10():
    p = layer_placement(json.dumps(DLA_ENGINE))
    assert p.dla == ("{ForeignNode[/stem/conv/Conv.../stage1/act/Relu]}",)
    assert p.gpu == ("/up/Resize", "{ForeignNode[/head/attn/MatMul.../head/attn/Softmax]}")
    assert p.onnx_on_gpu == ("/up/Resize", "/head/attn/MatMul", "/head/attn/Softmax")  # each node once
    assert p.glue == 3 and p.detailed
    line = p.summary(0)
    assert line.startswith("2 of 3 layers fell back from DLA core 0 to the GPU (/up/Resize, /head/attn/MatMul,")


def test_tensorrt_8_5_without_metadata_tells_glue_by_its_names():
    p = layer_placement(DLA_ENGINE_85)
    assert p.dla == ("{ForeignNode[Conv_0...Relu_5]}",) and p.gpu == ("Softmax_12",)
    assert p.onnx_on_gpu == () and p.glue == 3
    assert "(Softmax_12)" in p.summary(1) and "DLA core 1" in p.summary(1)


def test_all_on_dla_says_nothing_and_a_gpu_engine_has_every_layer_on_the_gpu():
    only_dla = {"Layers": DLA_ENGINE["Layers"][:3], "Bindings": ["input", "x"]}
    p = layer_placement(only_dla)
    assert len(p.dla) == 1 and p.gpu == () and p.summary(0) is None
    gpu = {"Layers": [{"Name": "/conv/Conv + /act/Relu", "LayerType": "CaskConvolution",
                       "Metadata": f"[ONNX Layer: /conv/Conv]{RS}[ONNX Layer: /act/Relu]"}], "Bindings": []}
    assert layer_placement(gpu) == LayerPlacement((), ("/conv/Conv + /act/Relu",), ("/conv/Conv", "/act/Relu"), 0)


def test_names_only_engines_say_placement_is_unknown():
    p = layer_placement({"Layers": ["input to nvm", "{ForeignNode[Conv_0...Relu_5]}"], "Bindings": ["input"]})
    assert not p.detailed and p.dla == p.gpu == ()
    assert "unknown" in p.summary(0)


def test_only_the_first_profile_is_read():
    second = [dict(layer, Name=f"{layer['Name']} [profile 1]") for layer in DLA_ENGINE["Layers"]]
    p = layer_placement({"Layers": DLA_ENGINE["Layers"] + second, "Bindings": []})
    assert p == layer_placement(DLA_ENGINE)


def test_many_fallbacks_are_counted_not_all_named():
    layers = [{"Name": f"/n{i}", "LayerType": "Resize", "Metadata": f"[ONNX Layer: /n{i}]"} for i in range(11)]
    line = layer_placement({"Layers": layers, "Bindings": []}).summary(0)
    assert "11 of 11 layers" in line and "/n7 and 3 more" in line and "/n8" not in line


@pytest.mark.parametrize("layer, device", [
    ({"Name": "{ForeignNode[a...b]}", "LayerType": "DLA"}, "DLA"),
    ({"Name": "{ForeignNode[a...b]}", "LayerType": "DlaLayer"}, "DLA"),
    ({"Name": "{ForeignNode[a...b]}", "LayerType": "Myelin"}, "GPU"),
    ({"Name": "{ForeignNode[a...b]}", "LayerType": "kgen"}, "GPU"),
    ({"Name": "/conv/Conv", "LayerType": "CaskConvolution"}, "GPU"),
])
def test_layer_device(layer, device):
    assert layer_device(layer) == device


def test_something_else_than_engine_information_is_an_artifact_error():
    with pytest.raises(ArtifactError, match="'Layers'"):
        layer_placement("[]")
    with pytest.raises(ArtifactError):
        layer_placement({"Bindings": []})
