"""ONNX files from other exporters, made fit for the stages before any of them runs.

What other tools write, and what happens to it here:
    * symbolic batch, height and width (``N``, ``height``, ``width``): pinned from ``--batch`` and
      ``--input-size``, shapes inferred again; a symbolic height or width without ``--input-size``
      is a one-line error asking for it;
    * an old opset (< 13; per-channel Q/DQ needs 13, ModelOpt and the fp16 pass want 17): upgraded
      with onnx's version converter, or a one-line error naming the op it could not convert;
    * external-data files: read and written back into one file (an error names a missing one);
    * a channels-last image input (N, H, W, C), as Keras and TensorFlow export it: recognised when
      its last axis holds 1, 3 or 4 channels and its second does not, or declared with
      ``--input-layout NHWC``; a Transpose is put in front so the deployable graph takes
      (N, C, H, W) like every other artifact, and one behind each 4-D output, which such a graph
      gives channels-last too, so `infer` stitches (N, C, h, w) as always;
    * several outputs and ``--output-name NAME``: the others are left out of the deployable graph;
    * several image inputs, an input that is not 4-D, or float16 weights (the precision stage starts
      from float32): refused in one line naming the reason;
    * an op ONNX Runtime cannot run: named in one line.
"""
from __future__ import annotations

__all__ = ["OnnxPreparation", "prepare_onnx", "input_layout", "MIN_OPSET", "TARGET_OPSET", "LAYOUTS"]

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import ConfigError, SourceError

MIN_OPSET = 13
TARGET_OPSET = 17
FLOAT, FLOAT16 = 1, 10
LAYOUTS = ("NCHW", "NHWC")
CHANNEL_COUNTS = (1, 3, 4)  # grey, RGB, RGBA/RGB+NIR: what a channels axis of an image input holds


@dataclass(frozen=True)
class OnnxPreparation:
    """What was done to a foreign ONNX file.

    Attributes:
        path: the prepared file.
        input_name / input_shape: the image input as pinned.
        pinned: dimensions that were symbolic, name -> value given.
        opset_before / opset_after: default-domain opset.
        external_data: whether the weights were in external files.
        float16: whether the graph holds float16 weights or inputs.
        layout: the input's layout as the file has it (``NHWC``: Transposes were put around it).
        layout_basis: what said so (the shape, or ``--input-layout``).
        transposed: outputs given channels-last by the file, turned to (N, C, h, w).
        dropped: outputs left out (``--output-name``).
    """

    path: Path
    input_name: str
    input_shape: tuple[int, ...]
    pinned: dict = field(default_factory=dict)
    opset_before: int = 0
    opset_after: int = 0
    external_data: bool = False
    float16: bool = False
    layout: str = "NCHW"
    layout_basis: str = ""
    transposed: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"input {self.input_name} {list(self.input_shape)}"]
        if self.pinned:
            parts.append("pinned " + ", ".join(f"{k}={v}" for k, v in self.pinned.items()))
        if self.opset_after != self.opset_before:
            parts.append(f"opset {self.opset_before} -> {self.opset_after}")
        if self.external_data:
            parts.append("external data folded in")
        if self.layout == "NHWC":
            behind = f" and behind {', '.join(self.transposed)}" if self.transposed else ""
            parts.append(f"channels-last input ({self.layout_basis}): Transpose to NCHW in front{behind}")
        if self.dropped:
            parts.append(f"left out: {', '.join(self.dropped)}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "input_name": self.input_name, "input_shape": list(self.input_shape),
                "pinned": dict(self.pinned), "opset_before": self.opset_before, "opset_after": self.opset_after,
                "external_data": self.external_data, "float16": self.float16, "layout": self.layout,
                "layout_basis": self.layout_basis, "transposed": list(self.transposed), "dropped": list(self.dropped)}


def _load(path: Path):
    import onnx

    try:
        bare = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise SourceError(f"{path.name} is not a readable ONNX file: {_first_line(exc)}") from None
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in bare.graph.initializer)
    if not external:
        return bare, False
    try:
        return onnx.load(str(path)), True
    except Exception as exc:
        raise SourceError(f"{path.name} keeps its weights in external files that cannot be read "
                          f"({_first_line(exc)}): copy them beside it") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _image_input(model):
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise SourceError(f"the ONNX model has {len(inputs)} inputs ({names}); edgekit deploys models with one "
                          "image input (N, C, H, W): export it with the others folded in as constants")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise SourceError(f"the ONNX input {inputs[0].name} has {len(dims)} dimensions; edgekit expects (N, C, H, W) "
                          "or, with --input-layout NHWC, (N, H, W, C)")
    return inputs[0]


def _dims(value) -> str:
    return "(" + ", ".join(str(d.dim_value or d.dim_param or "?") for d in value.type.tensor_type.shape.dim) + ")"


def input_layout(value, declared: str | None = None) -> tuple[str, str]:
    """(``NCHW`` or ``NHWC``, what said so) of a 4-D image input: ``declared`` (``--input-layout``),
    else its shape: channels last when its last axis holds 1, 3 or 4 and its second does not."""
    if declared:
        layout = declared.upper()
        if layout not in LAYOUTS:
            raise ConfigError(f"unknown input layout {declared!r}; choose one of: {', '.join(LAYOUTS)}")
        return layout, "--input-layout"
    dims = value.type.tensor_type.shape.dim
    second, last = dims[1].dim_value, dims[3].dim_value
    if last in CHANNEL_COUNTS and second not in CHANNEL_COUNTS:
        return "NHWC", f"shape {_dims(value)}: {last} channels last"
    return "NCHW", f"shape {_dims(value)}"


def _rename_uses(graph, old: str, new: str) -> None:
    """Every node input ``old`` (in subgraphs too, which may read outer names) becomes ``new``."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                _rename_uses(sub, old, new)


def _permuted(value, perm: tuple[int, ...]) -> None:
    """``value``'s shape with its axes in ``perm`` order."""
    dims = [(d.dim_value, d.dim_param) for d in value.type.tensor_type.shape.dim]
    for dim, i in zip(value.type.tensor_type.shape.dim, perm):
        dim.Clear()
        if dims[i][0] > 0:
            dim.dim_value = dims[i][0]
        elif dims[i][1]:
            dim.dim_param = dims[i][1]


def _channels_first(model, value) -> tuple[str, ...]:
    """A Transpose (N, C, H, W) -> (N, H, W, C) in front of the input ``value`` and one
    (N, h, w, C) -> (N, C, h, w) behind each 4-D output; names are kept. Returns those outputs."""
    from onnx import helper

    graph = model.graph
    inner = f"{value.name}__nhwc"
    _rename_uses(graph, value.name, inner)
    graph.node.insert(0, helper.make_node("Transpose", [value.name], [inner], perm=[0, 2, 3, 1],
                                          name=f"{value.name}__to_nhwc"))
    _permuted(value, (0, 3, 1, 2))
    transposed = []
    inputs = {v.name for v in graph.input}
    for out in graph.output:
        if len(out.type.tensor_type.shape.dim) != 4 or out.name in inputs:
            continue
        inner = f"{out.name}__nhwc"
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == out.name:
                    node.output[i] = inner
        _rename_uses(graph, out.name, inner)
        graph.node.append(helper.make_node("Transpose", [inner], [out.name], perm=[0, 3, 1, 2],
                                           name=f"{out.name}__to_nchw"))
        _permuted(out, (0, 3, 1, 2))
        transposed.append(out.name)
    del graph.value_info[:]  # inferred again, under the new names
    return tuple(transposed)


def _keep_output(model, name: str | None) -> tuple[str, ...]:
    """Leave every output but ``name`` out of the graph (``--output-name``); returns those left out."""
    if name is None:
        return ()
    names = [o.name for o in model.graph.output]
    if name not in names:
        raise ConfigError(f"the ONNX model has no output {name!r}; its outputs: {', '.join(names)}")
    kept = [o for o in model.graph.output if o.name == name]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    return tuple(n for n in names if n != name)


def _pin(model, value, input_size: tuple[int, int] | None, batch: int | None, channels: int | None = None) -> dict:
    """Give every symbolic dimension of the input a value; shapes downstream are inferred again."""
    dims = value.type.tensor_type.shape.dim
    wanted = [batch or 1, channels, *(input_size or (None, None))]
    pinned = {}
    for i, dim in enumerate(dims):
        if dim.dim_value > 0:
            if i >= 2 and input_size and dim.dim_value != wanted[i]:
                raise ConfigError(f"the ONNX input is {dims[2].dim_value}x{dims[3].dim_value}, --input-size asks for "
                                  f"{input_size[0]}x{input_size[1]}: drop --input-size or export it with a dynamic size")
            continue
        name = dim.dim_param or f"dim{i}"
        if wanted[i] is None and i == 1:
            raise ConfigError(f"the ONNX input {value.name} {_dims(value)} has a symbolic channel axis ({name}) where "
                              "(N, C, H, W) puts channels; if it takes channels last (N, H, W, C) build with "
                              "--input-layout NHWC, else export it with a fixed channel count")
        if wanted[i] is None:
            raise ConfigError(f"the ONNX input {value.name} has a symbolic height and width ({name}); "
                              "pass --input-size H W")
        dim.Clear()
        dim.dim_value = int(wanted[i])
        pinned[name if name not in pinned else f"{name}{i}"] = int(wanted[i])
    if pinned:
        del model.graph.value_info[:]
        for out in model.graph.output:
            for dim in out.type.tensor_type.shape.dim:
                if not dim.dim_value:
                    dim.Clear()
    return pinned


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _upgrade(model, path: Path):
    from onnx import version_converter

    before = _opset(model)
    if before >= MIN_OPSET:
        return model
    try:
        return version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:
        raise SourceError(f"{path.name} uses opset {before}; the precision stage needs >= {MIN_OPSET} and the "
                          f"upgrade failed: {_first_line(exc)}; re-export it with opset {TARGET_OPSET}") from None


def _float16(model) -> bool:
    return any(t.data_type == FLOAT16 for t in model.graph.initializer) or any(
        i.type.tensor_type.elem_type == FLOAT16 for i in model.graph.input)


def _check_runs(path: Path) -> None:
    from edgekit.runtime.onnxrt import import_ort

    ort = import_ort()
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        text = _first_line(exc)
        raise SourceError(f"ONNX Runtime cannot run {path.name}: {text}") from None


def prepare_onnx(path: Path, out: Path, input_size: tuple[int, int] | None = None, batch: int | None = 1,
                 precision: str = "fp32", layout: str | None = None, output: str | None = None,
                 channels: int | None = None) -> OnnxPreparation:
    """Pin, upgrade and fold a foreign ONNX file into ``out``, or say in one line why it cannot be.

    Args:
        path: the ONNX file as the user has it.
        out: where the prepared single-file ONNX goes.
        input_size: (height, width) for symbolic spatial dimensions.
        batch: the batch for a symbolic batch dimension (None: 1).
        precision: the precision asked for (float16 graphs only build as they are, ``fp32``).
        layout: ``NCHW`` or ``NHWC`` (``--input-layout``); None: told by the input's shape (:func:`input_layout`).
        output: the one output to keep (``--output-name``); None: all of them.
        channels: the value of a symbolic channel axis (the channels mean/std declare); None: it is
            an error (the axis may not be the channels: ``--input-layout`` says which it is).
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"ONNX file {path} does not exist")
    model, external = _load(path)
    value = _image_input(model)
    dropped = _keep_output(model, output)
    layout, basis = input_layout(value, layout)
    transposed = _channels_first(model, value) if layout == "NHWC" else ()
    pinned = _pin(model, value, tuple(input_size) if input_size and input_size[0] else None, batch, channels)
    before = _opset(model)
    model = _upgrade(model, path)
    fp16 = _float16(model)
    if fp16 and precision != "fp32":
        raise SourceError(f"{path.name} holds float16 weights; --precision {precision} starts from a float32 "
                          "graph: export it in float32 (or build it as it is with --precision fp32)")
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:
        raise SourceError(f"{path.name}: shapes cannot be inferred after pinning {pinned}: {_first_line(exc)}") from None
    onnx.save(model, str(out))
    _check_runs(Path(out))
    shape = tuple(d.dim_value for d in _image_input(model).type.tensor_type.shape.dim)
    return OnnxPreparation(Path(out), value.name, shape, pinned, before, _opset(model), external, fp16, layout, basis,
                           transposed, dropped)
