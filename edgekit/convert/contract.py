"""What a model says about itself, and the input it is fed: read or declared, never guessed.

Readers, each returning a :class:`ModelContract` (what was said, and where each value was read):

- :func:`contract_from_onnx`: the graph's inputs and outputs, and its ``metadata_props``:
  Ultralytics exports (``author: Ultralytics``, ``imgsz``, ``stride``, ``task``, ``names``; inputs
  RGB in 0..1) and generic ``mean`` / ``std`` / ``channel_order`` / ``task`` / ``classes`` / ``labels``;
- :func:`contract_from_timm`: timm's ``pretrained_cfg`` of an architecture (mean, std, input size,
  interpolation), data inside timm, nothing downloaded;
- :func:`contract_from_torchvision`: a torchvision weights enum (``transforms()``, ``meta["categories"]``);
- :func:`contract_from_safetensors`: a checkpoint's ``__metadata__`` (the generic keys above).

:func:`input_preprocess` then decides the :class:`~edgekit.preprocess.Preprocess` a build uses:
options (``--mean --std --channel-order --scale --bands``) over the recipe's ``input:``, over what
the model says, over an assumption (ImageNet for timm and torchvision backbones, else none), with
one :class:`ContractWarning` line when an option contradicts the model or recipe and one when the
normalisation is assumed. Metadata is parsed with :func:`ast.literal_eval`, never evaluated.
"""
from __future__ import annotations

__all__ = ["ModelContract", "ContractWarning", "contract_from_onnx", "contract_from_timm", "contract_from_torchvision",
           "contract_from_safetensors", "input_preprocess", "outputs_at", "TASK_WORDS"]

import ast
import json
import re
import struct
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path

from edgekit.errors import ConfigError, SourceError
from edgekit.preprocess import ASSUMED, IMAGENET_MEAN, IMAGENET_STD, NORMALISATION, InputOptions, Preprocess

# a model's own word for its task -> edgekit's (None: a task edgekit does not build)
TASK_WORDS = {"detect": "detection", "detection": "detection", "classify": "classification",
              "classification": "classification", "segmentation": "segmentation", "semantic": "segmentation",
              "semantic_segmentation": "segmentation", "segment": None, "pose": None, "obb": None}
UNBUILT_TASKS = {"segment": "instance segmentation (boxes and mask coefficients)", "pose": "pose keypoints",
                 "obb": "oriented boxes"}
ULTRALYTICS = "ONNX metadata (Ultralytics)"
ULTRALYTICS_INPUT = "ONNX metadata (Ultralytics: RGB in 0..1)"


class ContractWarning(UserWarning):
    """A model input that was assumed, or a declaration that overrides what the model says."""


@dataclass(frozen=True)
class ModelContract:
    """What a model says about itself; a field it does not state is None (or empty).

    Attributes:
        name: the model read (file name, ``timm:<name>``, weights enum).
        mean / std / channel_order: the normalisation it states, in 0..1 units (pixel / full scale).
        interpolation: the resize it was trained with (timm, torchvision), for the report.
        task: edgekit's name for its task (``detection``, ``segmentation``, ``classification``), or
            None; task_word: the model's own word (Ultralytics ``detect``, ``segment``, ``pose``...).
        classes: its class names, in class-id order.
        input_size: (height, width) it was made for; channels: its input channels; stride: its
            largest output stride.
        inputs / outputs: ONNX graph tensors as ``{"name", "shape"}`` (a symbolic dimension is its name).
        sources: (field, where its value was read) for every field stated.
        metadata: the raw key/value pairs read (ONNX ``metadata_props``, safetensors ``__metadata__``).
        notes: what was read but not used, in a sentence each.
    """

    name: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str | None = None
    interpolation: str | None = None
    task: str | None = None
    task_word: str | None = None
    classes: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    channels: int | None = None
    stride: int | None = None
    inputs: tuple[dict, ...] = ()
    outputs: tuple[dict, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()

    def source_of(self, name: str) -> str | None:
        """Where ``name``'s value was read, or None when the model does not state it."""
        return dict(self.sources).get(name)

    @property
    def task_source(self) -> str | None:
        """Where the task was read (``ONNX metadata (Ultralytics)``), or None."""
        return self.source_of("task_word")

    def normalisation(self) -> dict:
        """The normalisation fields the model states, by name."""
        return {k: getattr(self, k) for k in NORMALISATION if getattr(self, k) is not None}

    def stated(self) -> dict:
        """Every field the model states, by name (the values of :attr:`sources`)."""
        return {k: getattr(self, k) for k, _ in self.sources}

    def with_said(self, source: str, **values) -> "ModelContract":
        """This contract with ``values`` stated by ``source`` (None / empty values are skipped)."""
        values = {k: v for k, v in values.items() if v is not None and v != ()}
        return replace(self, **values, sources=tuple((dict(self.sources) | {k: source for k in values}).items()))

    def merged(self, other: "ModelContract") -> "ModelContract":
        """This contract with what ``other`` states on top (a checkpoint's metadata over its architecture's)."""
        said = other.stated()
        merged = replace(self, **said, metadata=self.metadata + other.metadata, notes=self.notes + other.notes,
                         inputs=other.inputs or self.inputs, outputs=other.outputs or self.outputs)
        return replace(merged, sources=tuple((dict(self.sources) | dict(other.sources)).items()))

    def to_dict(self) -> dict:
        """For report.json and `edgekit inspect --json`: the fields stated, where each was read, the raw metadata."""
        data = {"name": self.name}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "sources", "metadata") or value is None or value == ():
                continue
            data[f.name] = [dict(v) for v in value] if f.name in ("inputs", "outputs") else (
                list(value) if isinstance(value, tuple) else value)
        data["sources"] = dict(self.sources)
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        return data


# ---- ONNX ------------------------------------------------------------------------------------------
def _literal(text: str):
    """A Python literal (``[640, 640]``, ``{0: 'person'}``), or None when it is not one."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _number_list(text: str) -> tuple[float, ...] | None:
    """``[0.5, 0.5, 0.5]``, ``0.5,0.5,0.5`` or ``123.675 116.28 103.53`` -> floats (None: not numbers)."""
    value = _literal(text)
    if isinstance(value, (int, float)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        value = [v for v in re.split(r"[,\s;]+", text.strip()) if v]
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers or None


def _names(text: str) -> tuple[str, ...]:
    """Class names from ``{0: 'person', 1: 'car'}``, ``['person', 'car']`` or ``person,car``."""
    value = _literal(text)
    if isinstance(value, dict):
        try:
            return tuple(str(value[k]) for k in sorted(value, key=int))
        except (TypeError, ValueError):
            return tuple(str(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return tuple(v.strip() for v in re.split(r"[,\n]+", text) if v.strip())


def _size(text: str) -> tuple[int, int] | None:
    value = _literal(text)
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


def _task(contract: ModelContract, word: str, source: str) -> ModelContract:
    word = str(word).strip().lower()
    task = TASK_WORDS.get(word)
    contract = contract.with_said(source, task_word=word, task=task)
    if task is None:
        what = UNBUILT_TASKS.get(word, "a task edgekit does not know")
        contract = replace(contract, notes=contract.notes + (
            f"{source} says task {word!r}: {what}, which edgekit does not build (detection, segmentation, "
            "classification)",))
    return contract


def _tensors(values, initializers: set[str]) -> tuple[dict, ...]:
    def dim(d):
        return d.dim_value if d.dim_value > 0 else (d.dim_param or "?")

    return tuple({"name": v.name, "shape": tuple(dim(d) for d in v.type.tensor_type.shape.dim)}
                 for v in values if v.name not in initializers)


def _generic(contract: ModelContract, meta: dict[str, str], where: str) -> ModelContract:
    """The generic keys: mean, std (in 0..255 units when above 1), channel_order, task, classes/labels."""
    lower = {k.lower(): v for k, v in meta.items()}
    for key in ("mean", "std"):
        values = _number_list(lower[key]) if key in lower else None
        if values is None:
            continue
        if max(abs(v) for v in values) > 1:
            values = tuple(v / 255 for v in values)
            contract = contract.with_said(f"{where} '{key}' (0..255 units, divided by 255)", **{key: values})
        else:
            contract = contract.with_said(f"{where} '{key}'", **{key: values})
    order = lower.get("channel_order", lower.get("color_format", "")).strip().upper()
    if order in ("RGB", "BGR"):
        contract = contract.with_said(f"{where} 'channel_order'", channel_order=order)
    if lower.get("task"):
        contract = _task(contract, lower["task"], f"{where} 'task'")
    for key in ("classes", "labels", "names"):
        if lower.get(key):
            contract = contract.with_said(f"{where} '{key}'", classes=_names(lower[key]))
            break
    return contract


def _ultralytics(contract: ModelContract, meta: dict[str, str]) -> ModelContract:
    """Ultralytics exports: imgsz, stride, task, names, channels; inputs RGB in 0..1 (pixel / 255)."""
    channels = contract.channels or int(_literal(meta.get("channels", "3")) or 3)
    contract = contract.with_said(ULTRALYTICS_INPUT, mean=(0.0,) * channels, std=(1.0,) * channels, channel_order="RGB")
    stride = _literal(meta.get("stride", ""))
    size = None if contract.input_size else _size(meta.get("imgsz", ""))  # a fixed input shape is the truth
    contract = contract.with_said(ULTRALYTICS, input_size=size,
                                  stride=int(stride) if isinstance(stride, int) else None,
                                  classes=_names(meta["names"]) if meta.get("names") else ())
    return _task(contract, meta["task"], ULTRALYTICS) if meta.get("task") else contract


def contract_from_onnx(path: Path) -> ModelContract:
    """What an ONNX file says: its inputs and outputs, and its metadata (module docstring)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - a damaged file is the user's to fix
        raise SourceError(f"cannot read {Path(path).name} as ONNX: {str(exc).strip().splitlines()[0][:200]}") from None
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    meta = {p.key: p.value for p in model.metadata_props}
    contract = ModelContract(Path(path).name, inputs=_tensors(graph.input, inits), outputs=_tensors(graph.output, ()),
                             metadata=tuple(meta.items()))
    if contract.inputs and len(contract.inputs[0]["shape"]) == 4:
        shape = contract.inputs[0]["shape"]
        contract = contract.with_said("ONNX input shape", channels=shape[1] if isinstance(shape[1], int) else None,
                                      input_size=tuple(shape[2:]) if all(isinstance(d, int) for d in shape[2:]) else None)
    if "ultralytics" in meta.get("author", "").lower():
        return _ultralytics(contract, meta)
    return _generic(contract, meta, "ONNX metadata")


def outputs_at(path: Path, input_size: tuple[int, int], batch: int = 1) -> tuple[dict, ...]:
    """The outputs of the ONNX file ``path`` (``{"name", "shape"}``) with its first input pinned to
    ``batch`` x C x ``input_size`` (NCHW): ONNX shape inference turns symbolic output sizes (an
    Ultralytics export's ``(floor(height/2 - 1/2)...)``) into numbers; a size it cannot infer, or a
    graph it cannot read, stays as the file declares it. Nothing is run."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    declared = _tensors(model.graph.output, ())
    first = next((v for v in model.graph.input if v.name not in inits), None)
    dims = first.type.tensor_type.shape.dim if first is not None else []
    if len(dims) != 4 or dims[1].dim_value <= 0:
        return declared
    for dim, value in zip(dims, (batch, None, *input_size)):
        if value is not None and dim.dim_value <= 0:
            dim.dim_value = int(value)  # replaces the symbolic name
    for out in model.graph.output:
        for dim in out.type.tensor_type.shape.dim:
            if dim.dim_value <= 0:
                dim.Clear()  # unknown: inference fills it
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - what the file declares is the answer then
        return declared
    return tuple({"name": d["name"], "shape": tuple(v if isinstance(v, int) else w for v, w in zip(i["shape"], d["shape"]))}
                 if len(i["shape"]) == len(d["shape"]) else d
                 for d, i in zip(declared, _tensors(inferred.graph.output, ())))


# ---- timm, torchvision, safetensors ----------------------------------------------------------------
def contract_from_timm(name: str) -> ModelContract:
    """timm's ``pretrained_cfg`` of ``name`` (``resnet50`` or ``resnet50.a1_in1k``); data, no download."""
    from timm.models import get_pretrained_cfg

    contract = ModelContract(f"timm:{name}")
    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return replace(contract, notes=(f"timm has no pretrained_cfg for {name}",))
    where = f"timm pretrained_cfg of {cfg.architecture or name}" + (f".{cfg.tag}" if cfg.tag else "")
    size = tuple(cfg.input_size or ())
    return contract.with_said(where, mean=tuple(cfg.mean) if cfg.mean else None,
                              std=tuple(cfg.std) if cfg.std else None, interpolation=cfg.interpolation or None,
                              input_size=(int(size[1]), int(size[2])) if len(size) == 3 else None,
                              channels=int(size[0]) if len(size) == 3 else None,
                              ).with_said("timm (PIL RGB images)", channel_order="RGB")


def contract_from_torchvision(factory: str, weights) -> ModelContract:
    """A torchvision weights enum's ``transforms()`` and ``meta``; ``weights`` is the enum or its
    name (``DEFAULT``, ``IMAGENET1K_V1``, ``ResNet18_Weights.IMAGENET1K_V1``) as ``--factory-arg``
    gives it. Reading them downloads nothing."""
    import importlib

    from torchvision.models import get_model_weights

    module, _, attr = factory.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    try:
        enum = get_model_weights(fn)
        entry = weights if isinstance(weights, enum) else enum.verify(str(weights).split(".")[-1])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--factory-arg weights={weights}: not weights of {factory} ({exc}); "
                          "name one of its weights enum, e.g. weights=DEFAULT") from None
    where = f"torchvision {type(entry).__name__}.{entry.name}"
    transform = entry.transforms()
    mean, std = getattr(transform, "mean", None), getattr(transform, "std", None)
    size = getattr(transform, "crop_size", None)
    interpolation = getattr(transform, "interpolation", None)
    contract = ModelContract(f"{factory} weights={entry.name}")
    if mean is None:  # detection weights: the model normalises inside; it takes RGB in 0..1
        mean, std, where_norm = (0.0,) * 3, (1.0,) * 3, f"{where}: RGB in 0..1, normalised inside the model"
    else:
        where_norm = f"{where}.transforms()"
    return contract.with_said(where_norm, mean=tuple(mean), std=tuple(std), channel_order="RGB").with_said(
        f"{where}.transforms()", input_size=(int(size[0]), int(size[-1])) if size else None,
        interpolation=getattr(interpolation, "value", None)).with_said(
        f"{where}.meta", classes=tuple(str(c) for c in entry.meta.get("categories", ()) or ()))


def contract_from_safetensors(path: Path) -> ModelContract:
    """A ``.safetensors`` checkpoint's ``__metadata__`` (read from its header, no tensor loaded)."""
    path = Path(path)
    contract = ModelContract(path.name)
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(min(length, 100_000_000)))
    except (OSError, struct.error, ValueError):
        raise SourceError(f"cannot read the header of {path.name} as safetensors") from None
    meta = {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}
    return _generic(replace(contract, metadata=tuple(meta.items())), meta, f"{path.name} metadata")


# ---- the input a build uses ------------------------------------------------------------------------
def _text(value) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}" if isinstance(
        value, float) else str(value)


def _differs(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and all(
            isinstance(v, (int, float)) for v in a + b):
        return any(abs(float(x) - float(y)) > 1e-6 for x, y in zip(a, b))
    return a != b


def input_preprocess(model: str, contract: ModelContract, declared: Preprocess | None, options: InputOptions,
                     imagenet: bool) -> Preprocess:
    """The normalisation ``model`` is fed, each value with where it came from.

    Per field, the first that says it: ``options``, ``declared`` (a recipe's ``input:`` or a
    manifest: the fields recorded in its ``origin``), the model's ``contract``, else an assumption:
    ImageNet's mean and std when ``imagenet`` (timm and torchvision backbones), else none (mean 0,
    std 1), RGB, marked ``assumed``. Warns in one line when options override values stated by the
    recipe or model (naming both), and in one line when the normalisation is assumed; a mean/std
    whose length is not the model's channel count is a :class:`~edgekit.errors.ConfigError`.
    """
    recipe = {k: (getattr(declared, k), where) for k, where in (declared.origin if declared else ())}
    stated = {k: (v, contract.source_of(k)) for k, v in contract.normalisation().items()}
    chosen = stated | recipe
    given = options.given()
    overridden = [f"{InputOptions.option(k)} {_text(_typed_like(chosen[k][0], v))} overrides {k} "
                  f"{_text(chosen[k][0])} from {chosen[k][1]}" for k, v in given.items()
                  if k in chosen and not chosen[k][1].startswith(ASSUMED)
                  and _differs(_typed_like(chosen[k][0], v), chosen[k][0])]
    values = {k: v for k, (v, _) in chosen.items()} | given
    origin = {k: where for k, (_, where) in chosen.items()} | {k: InputOptions.option(k) for k in given}
    channels = contract.channels or len(values.get("mean", values.get("std", ()))) or 3
    kind = "ImageNet (timm/torchvision backbone)" if imagenet and channels == 3 else "no normalisation"
    imagenet = kind.startswith("ImageNet")
    assume = {"mean": IMAGENET_MEAN if imagenet else (0.0,) * channels,
              "std": IMAGENET_STD if imagenet else (1.0,) * channels, "channel_order": "RGB"}
    missing = [k for k in NORMALISATION if k not in values]
    values |= {k: assume[k] for k in missing}
    origin |= {k: f"{ASSUMED}: {kind if k != 'channel_order' else 'RGB'}" for k in missing}
    origin.setdefault("scale", "default: 8-bit files (255)")
    pre = Preprocess.from_dict(values | {"source": origin})
    if contract.channels is not None:
        pre.check_channels(contract.channels, f"{model} ({contract.source_of('channels')})")
    if overridden:
        warnings.warn(f"{'; '.join(overridden)}: the option wins", ContractWarning, stacklevel=2)
    guessed = [k for k in NORMALISATION if pre.source_of(k).startswith(ASSUMED)]
    if guessed:
        said = ", ".join(f"{k.replace('_', ' ')} {_text(getattr(pre, k))}" for k in guessed)
        basis = f" ({pre.source_of(guessed[0]).split(': ', 1)[-1]})" if guessed != ["channel_order"] else ""
        warnings.warn(f"nothing declares {model}'s input normalisation: assumed {said}{basis}; declare it "
                      "with --mean/--std/--channel-order (or a recipe's input:)", ContractWarning, stacklevel=2)
    return pre


def _typed_like(reference, value):
    """An option's value in the reference's type, for comparison (floats for a tuple of floats)."""
    if isinstance(reference, tuple):
        return tuple(float(v) for v in value)
    if isinstance(reference, str):
        return str(value).upper()
    return value
