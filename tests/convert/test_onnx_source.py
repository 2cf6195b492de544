"""ONNX files from other exporters: symbolic dims pinned, old opsets upgraded, the rest refused in one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.cli.main import main
from edgekit.convert.onnx_source import prepare_onnx
from edgekit.convert.pipeline import BuildConfig, build
from edgekit.errors import ConfigError, SourceError


def _graph(path: Path, dims=("N", 3, "height", "width"), opset: int = 17, inputs: int = 1, op: str = "Relu",
           dtype=TensorProto.FLOAT, external: bool = False) -> Path:
    rng = np.random.default_rng(0)
    np_dtype = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    w = numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np_dtype), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]), helper.make_node(op, ["h"], ["y"])]
    ins = [helper.make_tensor_value_info("x", dtype, list(dims))]
    if inputs == 2:
        ins.append(helper.make_tensor_value_info("scale", dtype, [1]))
        nodes[-1] = helper.make_node("Mul", ["h", "scale"], ["y"])
    out = [helper.make_tensor_value_info("y", dtype, [dims[0], 4, dims[2], dims[3]])]
    model = helper.make_model(helper.make_graph(nodes, "foreign", ins, out, [w]),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def test_symbolic_dims_are_pinned_and_the_model_builds_and_compiles(tmp_path):
    path = _graph(tmp_path / "dyn.onnx")
    prep = prepare_onnx(path, tmp_path / "p.onnx", (32, 48), batch=2)
    assert prep.input_shape == (2, 3, 32, 48) and prep.pinned == {"N": 2, "height": 32, "width": 48}
    result = build(str(path), tmp_path / "out", BuildConfig(input_size=(32, 48), latency_runs=0, task="segmentation"))
    assert tuple(result.manifest.inputs[0].shape) == (1, 3, 32, 48)
    assert all(isinstance(d, int) for d in result.manifest.outputs[0].shape)
    assert result.manifest.engine_file  # compiled for the cpu target: the old TypeError is gone


def test_symbolic_height_without_input_size_is_one_line(tmp_path, capsys):
    path = _graph(tmp_path / "dyn.onnx")
    with pytest.raises(ConfigError, match="pass --input-size"):
        prepare_onnx(path, tmp_path / "p.onnx", None)
    code = main(["build", str(path), "-o", str(tmp_path / "out"), "--latency-runs", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--input-size" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_old_opset_is_upgraded(tmp_path):
    path = _graph(tmp_path / "old.onnx", dims=(1, 3, 16, 16), opset=11)
    prep = prepare_onnx(path, tmp_path / "p.onnx", None)
    assert prep.opset_before == 11 and prep.opset_after >= 13
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    from edgekit.convert.onnx_check import run_onnx

    assert np.allclose(run_onnx(path, x), run_onnx(prep.path, x), atol=1e-5)


def test_external_data_is_folded_in(tmp_path):
    path = _graph(tmp_path / "ext.onnx", dims=(1, 3, 16, 16), external=True)
    assert (tmp_path / "ext.onnx.data").is_file()
    prep = prepare_onnx(path, tmp_path / "p.onnx", None)
    assert prep.external_data
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(SourceError, match="external files"):
        prepare_onnx(path, tmp_path / "q.onnx", None)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(inputs=2), "2 inputs .x, scale."),
    (dict(dims=(1, 3, 16)), "3 dimensions"),
    (dict(op="NotAnOp"), "ONNX Runtime cannot run .*NotAnOp"),
])
def test_what_cannot_be_deployed_is_named(tmp_path, kwargs, pattern):
    dims = kwargs.pop("dims", (1, 3, 16, 16))
    if len(dims) == 3:
        path = tmp_path / "m.onnx"
        model = helper.make_model(helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)]), opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, str(path))
    else:
        path = _graph(tmp_path / "m.onnx", dims=dims, **kwargs)
    with pytest.raises(SourceError, match=pattern):
        prepare_onnx(path, tmp_path / "p.onnx", None)


def test_float16_weights_build_only_as_they_are(tmp_path):
    path = _graph(tmp_path / "h.onnx", dims=(1, 3, 16, 16), dtype=TensorProto.FLOAT16)
    with pytest.raises(SourceError, match="float16 weights"):
        prepare_onnx(path, tmp_path / "p.onnx", None, precision="int8")
    assert prepare_onnx(path, tmp_path / "q.onnx", None).float16


def _nhwc_graph(path: Path, dims=("N", "M1", "M2", 3)) -> Path:
    """A Keras-style graph: (N, H, W, C) in, Transpose, Conv, Transpose, (N, H, W, 4) map and (N, 2) scores out."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["h"], ["map"], perm=[0, 2, 3, 1]),
             helper.make_node("ReduceMean", ["map"], ["scores"], axes=[1, 2], keepdims=0)]
    model = helper.make_model(helper.make_graph(
        nodes, "keras", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
        [helper.make_tensor_value_info("map", TensorProto.FLOAT, [dims[0], dims[1], dims[2], 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [dims[0], 4])], [w]),
        opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def _ort(path: Path, x: np.ndarray) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))


@pytest.mark.parametrize("dims, layout, basis", [
    (("N", "M1", "M2", 3), None, "shape (N, M1, M2, 3): 3 channels last"),  # MTCNN's P-Net (keras2onnx)
    ((1, 16, 16, 3), None, "shape (1, 16, 16, 3): 3 channels last"),
    (("N", "H", "W", "C"), "NHWC", "--input-layout"),  # the shape cannot tell
])
def test_a_channels_last_input_is_turned_to_nchw(tmp_path, dims, layout, basis):
    path = _nhwc_graph(tmp_path / "k.onnx", dims)
    prep = prepare_onnx(path, tmp_path / "p.onnx", (16, 16), layout=layout, channels=3 if layout else None)
    assert prep.layout == "NHWC" and prep.layout_basis == basis and prep.transposed == ("map",)
    assert prep.input_shape == (1, 3, 16, 16)
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    got = _ort(prep.path, x)
    want = _ort(path, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(got["map"], want["map"].transpose(0, 3, 1, 2), atol=1e-5)  # (N, C, h, w) out
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5)  # 2-D outputs as they were


def test_a_symbolic_channel_axis_names_the_layout_option(tmp_path, capsys):
    path = _nhwc_graph(tmp_path / "k.onnx", ("N", "H", "W", "C"))
    with pytest.raises(ConfigError, match=r"symbolic channel axis \(H\).*--input-layout NHWC"):
        prepare_onnx(path, tmp_path / "p.onnx", (16, 16))
    code = main(["build", str(path), "-o", str(tmp_path / "out"), "--input-size", "16x16", "--latency-runs", "0"])
    assert code == 2 and "--input-layout NHWC" in capsys.readouterr().err


def test_a_channels_last_model_builds_and_infers_like_any_other(tmp_path):
    from PIL import Image

    from edgekit.artifact.manifest import read_manifest

    path = _nhwc_graph(tmp_path / "k.onnx")
    code = main(["build", str(path), "-o", str(tmp_path / "a"), "--input-size", "16x16", "--output-name", "map",
                 "--task", "segmentation", "--latency-runs", "0", "--mean", "0,0,0", "--std", "1,1,1"])
    assert code == 0
    manifest = read_manifest(tmp_path / "a")
    assert [tuple(t.shape) for t in manifest.inputs] == [(1, 3, 16, 16)]
    assert [(t.name, tuple(t.shape)) for t in manifest.outputs] == [("map", (1, 4, 16, 16))]  # scores left out
    pixels = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "s.png")
    assert main(["infer", str(tmp_path / "a"), str(tmp_path / "s.png"), "-o", str(tmp_path / "m.png"), "--overlap", "0",
                 "--no-progress"]) == 0
    want = _ort(path, (pixels[None] / 255).astype(np.float32))["map"][0].argmax(-1)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "m.png")), want)


def test_output_keeps_one_output_of_an_onnx_file(tmp_path):
    path = _nhwc_graph(tmp_path / "k.onnx", (1, 16, 16, 3))
    prep = prepare_onnx(path, tmp_path / "p.onnx", None, output="scores")
    assert prep.dropped == ("map",) and [o.name for o in onnx.load(str(prep.path)).graph.output] == ["scores"]
    with pytest.raises(ConfigError, match="has no output 'logits'; its outputs: map, scores"):
        prepare_onnx(path, tmp_path / "q.onnx", None, output="logits")
