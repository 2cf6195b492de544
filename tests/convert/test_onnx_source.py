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
