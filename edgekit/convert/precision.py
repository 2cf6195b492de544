"""Precision stage: decide fp32 / fp16 / int8 in the ONNX graph itself.

* ``fp16``: ModelOpt AutoCast; inputs and outputs stay float32, nodes whose values overflow fp16
  on the calibration images stay fp32.
* ``int8`` for TensorRT targets (flavor ``tensorrt``): ModelOpt ONNX PTQ, symmetric int8 Q/DQ
  (zero points 0) placed where TensorRT fuses them.
* ``int8`` for the cpu target (flavor ``onnxruntime``): ONNX Runtime's static quantizer in QDQ
  format, uint8 activations / int8 per-channel weights (U8S8), on every op type ORT quantizes:
  measured (bench/precision_cpu.py) faster than Conv/MatMul/Gemm only, whose float ops in between
  add a Q/DQ pair at every boundary (MobileOne-S1 2.0x vs 1.26x FP32's speed, FastViT-SA12+FPN
  0.96x vs 0.84x).
* ``int8`` for OpenVINO (flavor ``openvino``: ``--runtime openvino``, ``cpu-openvino``, and the
  ``cpu`` target's OpenVINO candidate): the same quantizer, symmetric int8 activations and weights
  (zero points 0) on Conv/MatMul/Gemm inputs only, the placement OpenVINO's int8 kernels run
  fastest and NNCF's own: on the demo model (AVX-512 VNNI EPYC) 2.10x OpenVINO's FP32 against
  1.88x for the U8S8 every-op graph, as fast as ``nncf.quantize``'s IR (2.10x, f32 pinned).
* ``bf16`` (cpu targets, on OpenVINO): the FP32 graph unchanged, computed in bfloat16 by OpenVINO's
  CPU plugin (``INFERENCE_PRECISION_HINT`` bf16) where the CPU has AVX-512 BF16 or AMX; verified,
  like fp16, by running it so on the held-out images. ONNX Runtime has no bf16 CPU kernels.

:func:`set_precision` writes one lowering; the stage's verb, which verifies it on held-out images
and falls back, is :func:`edgekit.convert.precision_policy.lower_precision`.

Calibration runs in bounded memory whatever the set's size: ONNX Runtime's calibrators are fed
``calib_chunk`` batches per pass (histograms and ranges are merged between passes), and ModelOpt's
patched calibrators collect one batch at a time from a reader that loads images lazily.
"""
from __future__ import annotations

__all__ = ["PrecisionSpec", "PrecisionResult", "set_precision", "describe_lowering", "PRECISIONS", "FLAVORS", "CALIB_METHODS"]

import contextlib
import io
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from edgekit.artifact.manifest import PRECISIONS
from edgekit.atomic import atomic_file
from edgekit.evaluate.image_set import CalibrationSet
from edgekit.errors import CalibrationError, ConfigError

FLAVORS = ("tensorrt", "onnxruntime", "openvino")
OPENVINO_OPS = ("Conv", "MatMul", "Gemm")  # what the openvino flavor quantizes (the inputs of)
CALIB_METHODS = ("entropy", "max", "percentile")
FP16_CALIB_BATCHES = 4  # AutoCast's reference run keeps every activation of its batches


@dataclass(frozen=True)
class PrecisionSpec:
    """How to lower a model's precision.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8``.
        flavor: the runtime the int8 graph is placed for, ``tensorrt``, ``onnxruntime`` or ``openvino``
            (the module docstring says how each places Q/DQ).
        calib_method: ``entropy``, ``max`` or ``percentile`` (percentile: onnxruntime flavor only).
        calib_samples: calibration images (or tiles) to use; None: all of the calibration set's.
        per_channel: per-channel weight scales (ModelOpt always uses them).
        nodes_to_exclude: node names (regular expressions for ModelOpt) kept in float.
        op_types: op types the onnxruntime flavor quantizes; None: all that ORT can.
        high_precision: ``fp16`` or ``fp32``, what ModelOpt leaves unquantized layers in.
        calib_chunk: batches per calibration pass; bounds calibration memory.
        calib_memory_mb: what one calibration pass may hold (onnxruntime flavor); None: a quarter
            of the memory available (:mod:`edgekit.convert.calibration_memory`).
        runtime: the CPU runtime the lowered graph is verified on (``onnxruntime`` or ``openvino``:
            the cpu target's backend, whose own int8 kernels round differently).
    """

    precision: str = "fp32"
    flavor: str = "onnxruntime"
    calib_method: str = "entropy"
    calib_samples: int | None = None
    per_channel: bool = True
    nodes_to_exclude: tuple[str, ...] = ()
    op_types: tuple[str, ...] | None = None
    high_precision: str = "fp16"
    calib_chunk: int = 4
    calib_memory_mb: float | None = None
    runtime: str = "onnxruntime"

    def __post_init__(self) -> None:
        for field, value, choices in (
            ("precision", self.precision, PRECISIONS),
            ("flavor", self.flavor, FLAVORS),
            ("calib_method", self.calib_method, CALIB_METHODS),
            ("high_precision", self.high_precision, ("fp16", "fp32")),
            ("runtime", self.runtime, ("onnxruntime", "openvino")),
        ):
            if value not in choices:
                raise ConfigError(f"unknown {field} {value!r}; choose one of: {', '.join(choices)}")
        if self.precision == "bf16" and self.runtime != "openvino":
            from edgekit.runtime.open import BF16_ON_ORT

            raise ConfigError(BF16_ON_ORT)
        if (self.calib_samples is not None and self.calib_samples < 1) or self.calib_chunk < 1:
            raise ConfigError("calibration needs at least 1 image (--calib-samples) and 1 batch per pass")
        if self.precision == "int8" and self.flavor == "tensorrt":
            if self.calib_method == "percentile":
                raise ConfigError("percentile calibration is for the cpu target; TensorRT targets take entropy or max")
            if not self.per_channel:
                raise ConfigError("TensorRT targets quantize weights per channel (ModelOpt); drop --no-per-channel")


@dataclass(frozen=True)
class PrecisionResult:
    """What the precision stage wrote.

    Attributes:
        path: the lowered ONNX.
        nodes_before / nodes_after: node counts of the input and output graphs.
        qdq_pairs: QuantizeLinear nodes in the output (each feeds a DequantizeLinear).
        fp16_nodes: nodes that compute in float16 (Casts not counted).
        calib_samples: calibration images used (0 without calibration).
        seconds: wall time of the stage.
        calib_groups: passes over the calibration images (more than 1: split to fit memory).
    """

    path: Path
    precision: str
    flavor: str
    nodes_before: int
    nodes_after: int
    qdq_pairs: int
    fp16_nodes: int
    calib_samples: int
    seconds: float
    calib_groups: int = 0

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def set_precision(onnx_in: Path, onnx_out: Path, spec: PrecisionSpec, calib: CalibrationSet | None = None) -> PrecisionResult:
    """Write ``onnx_in`` at ``spec.precision`` to ``onnx_out``; inputs and outputs stay float32.

    Raises:
        CalibrationError: int8 without a calibration set, or one too small for ``calib_samples``.
    """
    start = time.perf_counter()
    onnx_in, onnx_out = Path(onnx_in), Path(onnx_out)
    used = calib.with_samples(spec.calib_samples) if calib is not None and spec.calib_samples else calib
    if spec.precision == "int8" and used is None:
        raise CalibrationError("int8 needs calibration images: pass --calib FOLDER (or one large image)")
    if used is not None and spec.precision != "fp32":
        len(used)  # fail early, with counts, when the set is too small
    groups = 0
    with atomic_file(onnx_out) as tmp:
        if spec.precision in ("fp32", "bf16"):  # bf16: the runtime computes the FP32 graph in bfloat16
            shutil.copyfile(onnx_in, tmp)
        elif spec.precision == "fp16":
            _autocast_fp16(onnx_in, tmp, spec, used)
        elif spec.flavor == "tensorrt":
            _modelopt_int8(onnx_in, tmp, spec, used)
        else:
            groups = _ort_int8(onnx_in, tmp, spec, used)
    samples = 0 if used is None or spec.precision in ("fp32", "bf16") else len(used.items)
    if spec.precision == "fp16":
        samples = min(samples, FP16_CALIB_BATCHES * used.batch) if used is not None else 0
    result = describe_lowering(onnx_in, onnx_out, spec.precision, spec.flavor, samples, time.perf_counter() - start)
    return replace(result, calib_groups=groups)


def describe_lowering(onnx_in: Path, onnx_out: Path, precision: str, flavor: str, calib_samples: int = 0,
                      seconds: float = 0.0) -> PrecisionResult:
    """The counts of a lowering ``onnx_out`` of ``onnx_in`` (written here or cut from another)."""
    return PrecisionResult(
        Path(onnx_out), precision, flavor, _node_count(onnx_in), _node_count(onnx_out),
        _count(onnx_out, "QuantizeLinear"), _fp16_nodes(onnx_out), calib_samples, seconds,
    )


# ---- calibration data for ONNX Runtime and ModelOpt ------------------------------------------
def _reader(calib: CalibrationSet, input_name: str, chunk: int):
    """An ONNX Runtime CalibrationDataReader over ``calib``, loading one batch at a time.

    ``set_range`` / ``__len__`` follow ORT's strided calibration protocol (``CalibStridedMinMax``):
    ORT calls ``collect_data`` once per range, so at most ``chunk`` batches of activations are held.
    ``len`` is rounded up to a multiple of ``chunk`` because ORT requires it; ranges are clipped.
    """
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.total = len(calib)
            self.first = None
            self.set_range(0, self.total)

        def __len__(self) -> int:
            return -(-self.total // chunk) * chunk

        def set_range(self, start_index: int, end_index: int) -> None:
            self.batches = calib.batches(start_index, min(end_index, self.total))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

        def get_first(self) -> dict[str, np.ndarray]:
            if self.first is None:
                self.first = {input_name: next(calib.batches(0, 1))}
            return self.first

        def rewind(self) -> None:
            self.set_range(0, self.total)

    return Reader()


def _input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in inits]
    if len(names) != 1:
        raise ConfigError(f"calibration feeds models with one image input; {path.name} has {names}")
    return names[0]


# ---- the three lowerings -----------------------------------------------------------------------
def _ort_int8(onnx_in: Path, out: Path, spec: PrecisionSpec, calib: CalibrationSet) -> int:
    """ONNX Runtime static quantization, QDQ U8S8 (flavor ``openvino``: symmetric S8S8 on
    :data:`OPENVINO_OPS`), calibrated ``calib_chunk`` batches per pass, in groups of tensors when one
    image's activations exceed the memory budget. Returns the groups."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgekit.convert.calibration_memory import grouped_calibrator, memory_budget, plan_calibration

    method = {"entropy": CalibrationMethod.Entropy, "max": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    openvino = spec.flavor == "openvino"
    op_types = list(spec.op_types) if spec.op_types else (list(OPENVINO_OPS) if openvino else None)
    plan = plan_calibration(onnx_in, op_types, spec.calib_method, spec.calib_chunk, memory_budget(spec.calib_memory_mb))
    options = _ort_calib_options(spec)
    grouped = contextlib.nullcontext()
    if plan.split:
        options.pop("CalibStridedMinMax")
        grouped = grouped_calibrator(plan, spec.calib_chunk)
    with _quiet(), grouped, tempfile.TemporaryDirectory(prefix="edgekit-int8-") as work:
        source = unshared_initializers(onnx_in, Path(work) / "unshared.onnx")
        quantize_static(
            str(source), str(out), _reader(calib, _input_name(onnx_in), spec.calib_chunk),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            per_channel=spec.per_channel,
            activation_type=QuantType.QInt8 if openvino else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(spec.nodes_to_exclude),
            calibrate_method=method[spec.calib_method],
            calibration_providers=["CPUExecutionProvider"],
            extra_options=options,
        )
    return len(plan.groups)


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


def _ort_calib_options(spec: PrecisionSpec) -> dict:
    """One collect_data per chunk (despite its name, CalibStridedMinMax works for any method).

    ORT's MinMax calibrator merges ranges at the end of every collect_data; its
    CalibMaxIntermediateOutputs would clear a full chunk *before* merging it (ORT 1.24 drops that
    data and then fails with "No data is collected"), so only the histogram methods get it.
    """
    options = {"CalibStridedMinMax": spec.calib_chunk}
    if spec.calib_method != "max":
        options["CalibMaxIntermediateOutputs"] = spec.calib_chunk
    if spec.flavor == "openvino":  # zero points 0: OpenVINO's int8 kernels need no compensation
        options |= {"ActivationSymmetric": True, "WeightSymmetric": True}
    return options


def _modelopt_int8(onnx_in: Path, out: Path, spec: PrecisionSpec, calib: CalibrationSet) -> None:
    """ModelOpt ONNX PTQ: TensorRT-friendly symmetric int8 Q/DQ, calibrated on ORT's CPU provider."""
    from modelopt.onnx.quantization import quantize

    with tempfile.TemporaryDirectory(prefix="edgekit-modelopt-") as work:
        model = Path(work) / "model.onnx"  # ModelOpt writes intermediate files beside its input
        shutil.copyfile(onnx_in, model)
        with _quiet(), _ort_patches_undone():
            quantize(
                onnx_path=str(model),
                quantize_mode="int8",
                calibration_method=spec.calib_method,
                calibration_data_reader=_reader(calib, _input_name(onnx_in), spec.calib_chunk),
                calibration_eps=["cpu"],
                nodes_to_exclude=list(spec.nodes_to_exclude) or None,
                high_precision_dtype=spec.high_precision,
                output_path=str(Path(work) / "quant.onnx"),
                log_level="ERROR",
            )
        shutil.move(Path(work) / "quant.onnx", out)


def _autocast_fp16(onnx_in: Path, out: Path, spec: PrecisionSpec, calib: CalibrationSet | None) -> None:
    """ModelOpt AutoCast to fp16 with float32 I/O, its overflow checks run on calibration images."""
    import onnx
    from modelopt.onnx.autocast import convert_to_mixed_precision

    foreign = sorted({n.op_type for n in onnx.load(str(onnx_in), load_external_data=False).graph.node
                      if n.domain not in ("", "ai.onnx")})
    if foreign:  # AutoCast takes them for custom TensorRT layers and needs TensorRT to sanitize them
        raise ConfigError(f"the graph holds ONNX Runtime-only ops ({', '.join(foreign[:4])}) that fp16 "
                          "AutoCast cannot convert: build fp16 from the model's source or an ONNX without them "
                          "(an fp32 artifact of a transformer has them fused in)")

    with tempfile.TemporaryDirectory(prefix="edgekit-autocast-") as work:
        data = None
        if calib is not None:
            name = _input_name(onnx_in)
            for i, batch in enumerate(calib.batches(0, FP16_CALIB_BATCHES)):
                np.savez(Path(work) / f"batch{i:03d}.npz", **{name: batch})
            data = work
        with _quiet():
            model = convert_to_mixed_precision(
                onnx_path=str(onnx_in),
                low_precision_type="fp16",
                keep_io_types=True,
                nodes_to_exclude=list(spec.nodes_to_exclude) or None,
                calibration_data=data,
                providers=["cpu"],
            )
    onnx.save(model, str(out))


@contextlib.contextmanager
def _ort_patches_undone():
    """Undo, on leaving, the patches ModelOpt applies to ONNX Runtime's quantization classes.

    ModelOpt replaces methods of ORT's calibrators and quantizers process-wide on every call
    (``patch_ort_modules``); left in place, they break ORT's own ``quantize_static`` later in the
    same process (MinMax ranges go missing). Its patched calibrators are needed only inside.
    """
    from onnxruntime.quantization import base_quantizer, calibrate, qdq_quantizer

    owners = [
        calibrate, calibrate.CalibraterBase, calibrate.MinMaxCalibrater, calibrate.HistogramCalibrater,
        calibrate.HistogramCollector, qdq_quantizer.QDQQuantizer, base_quantizer.BaseQuantizer,
    ]
    saved = [(owner, dict(vars(owner))) for owner in owners]
    try:
        yield
    finally:
        for owner, attrs in saved:
            for name in set(vars(owner)) - set(attrs):
                if not name.startswith("__"):
                    delattr(owner, name)
            for name, value in attrs.items():
                if callable(value) and vars(owner).get(name) is not value:
                    setattr(owner, name, value)


@contextlib.contextmanager
def _quiet():
    """Silence the libraries' chatter: ORT's prints and advice, ModelOpt's INFO logs and tqdm bars.

    Errors still propagate as exceptions; only what they print on the way is dropped.
    """
    import logging

    modelopt = logging.getLogger("modelopt")
    level = modelopt.level
    modelopt.setLevel(logging.ERROR)
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)
        modelopt.setLevel(level)


# ---- counts -----------------------------------------------------------------------------------
def _node_count(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def _count(path: Path, op_type: str) -> int:
    import onnx

    return sum(n.op_type == op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


def _fp16_nodes(path: Path) -> int:
    """Nodes (Casts aside) with a float16 output, after shape inference."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output]}
    fp16 = onnx.TensorProto.FLOAT16
    return sum(n.op_type != "Cast" and any(types.get(o) == fp16 for o in n.output) for n in graph.node)
