"""Where the time goes: per-layer cost from ONNX Runtime's profile JSON, or OpenVINO's performance
counters (TensorRT: see engine.py).

ONNX Runtime writes a Chrome-trace JSON list; each executed node is an event with
``cat == "Node"``, ``name == "<node>_kernel_time"``, ``dur`` in microseconds and ``args`` with
``op_name``, ``provider`` and ``input_type_shape`` / ``output_type_shape``.
"""
from __future__ import annotations

__all__ = ["LayerTime", "LayerReport", "layers_from_ort_profile", "layer_report", "ort_node_precision",
           "openvino_layer_report", "openvino_kernel_precision"]

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekit.errors import InputError

_INT8_OPS = ("QLinear", "ConvInteger", "MatMulInteger", "DynamicQuantize")
_TYPE_PRECISION = {"float": "fp32", "float16": "fp16", "bfloat16": "bf16", "int8": "int8", "uint8": "int8",
                   "double": "fp64", "int64": "int", "int32": "int", "bool": "bool"}


@dataclass(frozen=True)
class LayerTime:
    """One layer (node) and its mean time per run.

    Attributes:
        name: node or layer name.
        op: operator or layer type ("" when the source does not say).
        ms: mean milliseconds per run.
        share: fraction of the summed layer time, in [0, 1].
        precision: ``fp32``, ``fp16``, ``int8``... or ``?``.
    """

    name: str
    op: str
    ms: float
    share: float
    precision: str = "?"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LayerReport:
    """Per-layer cost of one artifact.

    Attributes:
        source: ``onnxruntime`` or ``tensorrt``.
        runs: profiled runs averaged.
        total_ms: summed mean layer time per run.
        layers: the top layers by time, slowest first.
        layer_count: layers (nodes) that ran, in all.
        precision_counts: how many layers ran in each precision.
        providers: layers per execution provider (ONNX Runtime) or device (TensorRT: GPU/DLA).
    """

    source: str
    runs: int
    total_ms: float
    layers: tuple[LayerTime, ...]
    layer_count: int
    precision_counts: dict = field(default_factory=dict)
    providers: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["layers"] = [layer.to_dict() for layer in self.layers]
        return data


def ort_node_precision(op: str, type_shapes: list[dict]) -> str:
    """The precision a node ran in: int8 for integer-quantized kernels, else its first float type."""
    if op.startswith(_INT8_OPS):
        return "int8"
    for entry in type_shapes:
        for dtype in entry:
            if dtype in ("float", "float16", "bfloat16", "double"):
                return _TYPE_PRECISION[dtype]
    for entry in type_shapes:
        for dtype in entry:
            return _TYPE_PRECISION.get(dtype, dtype)
    return "?"


def layers_from_ort_profile(path: Path | str, top: int = 10, skip_runs: int = 0) -> LayerReport:
    """Aggregate an ONNX Runtime profile: mean time per node over the runs it holds.

    Args:
        path: the JSON file ONNX Runtime wrote (``OnnxRuntimeRunner.last_profile``).
        top: how many of the slowest nodes to keep.
        skip_runs: leading ``model_run`` events to ignore (warm-up).
    """
    events = _read_events(Path(path))
    runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    if not runs:
        raise InputError(f"{path} holds no model_run event: is it an ONNX Runtime profile of a run?")
    first_ts = runs[skip_runs] if skip_runs < len(runs) else runs[-1]
    counted = len(runs) - min(skip_runs, len(runs) - 1)
    total_us: dict[str, float] = defaultdict(float)
    meta: dict[str, tuple[str, str, str]] = {}
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time") or e["ts"] < first_ts:
            continue
        name = e["name"][: -len("_kernel_time")]
        args = e.get("args", {})
        total_us[name] += float(e.get("dur", 0))
        op = str(args.get("op_name", ""))
        types = list(args.get("output_type_shape", [])) + list(args.get("input_type_shape", []))
        meta[name] = (op, ort_node_precision(op, types), str(args.get("provider", "?")))
    per_run = {name: us / 1000 / counted for name, us in total_us.items()}
    return layer_report("onnxruntime", counted, per_run, meta, top)


def layer_report(source: str, runs: int, per_run_ms: dict[str, float], meta: dict[str, tuple[str, str, str]], top: int) -> LayerReport:
    """Rank layers by time. ``meta`` maps a name to (op, precision, provider or device)."""
    total = sum(per_run_ms.values())
    ranked = sorted(per_run_ms.items(), key=lambda kv: kv[1], reverse=True)
    layers = tuple(
        LayerTime(name, meta.get(name, ("", "?", "?"))[0], ms, ms / total if total > 0 else 0.0, meta.get(name, ("", "?", "?"))[1])
        for name, ms in ranked[: max(top, 0)]
    )
    precisions: dict[str, int] = defaultdict(int)
    providers: dict[str, int] = defaultdict(int)
    for name in per_run_ms:
        _, precision, provider = meta.get(name, ("", "?", "?"))
        precisions[precision] += 1
        providers[provider] += 1
    return LayerReport(source, runs, total, layers, len(per_run_ms), dict(precisions), dict(providers))


def openvino_kernel_precision(kernel: str) -> str:
    """The precision an OpenVINO CPU kernel ran in, from its name (``brgconv_avx512_amx_I8``,
    ``jit_avx512_f32``, ``ref_any_bf16``...)."""
    tail = kernel.lower().rsplit("_", 1)[-1]
    return {"i8": "int8", "u8": "int8", "f32": "fp32", "bf16": "bf16", "f16": "fp16", "i32": "int", "i64": "int"}.get(tail, "?")


def openvino_layer_report(runner, feed: dict, runs: int = 20, top: int = 10) -> LayerReport:
    """Mean time per layer over ``runs`` requests (after one warm-up) of an active OpenVINO runner,
    read from its performance counters (the runner is recompiled with ``PERF_COUNT`` on)."""
    import dataclasses

    from edgekit.runtime.openvino_rt import OpenVINORunner, profiling_layers

    totals: dict[str, float] = defaultdict(float)
    meta: dict[str, tuple[str, str, str]] = {}
    runs = max(runs, 1)
    with OpenVINORunner(runner.model, dataclasses.replace(runner.settings, profile=True)) as profiled:
        profiled.infer(feed)
        for _ in range(runs):
            profiled.infer(feed)
            for name, (ms, op, kernel) in profiling_layers(profiled).items():
                totals[name] += ms
                meta[name] = (op, openvino_kernel_precision(kernel), kernel.split("_", 1)[0] or "?")
    return layer_report("openvino", runs, {n: t / runs for n, t in totals.items()}, meta, top)


def _read_events(path: Path) -> list[dict]:
    if not path.is_file():
        raise InputError(f"profile {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON ({exc})") from None
    events = data.get("traceEvents", []) if isinstance(data, dict) else data
    return [e for e in events if isinstance(e, dict) and "ts" in e]
