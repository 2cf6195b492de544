"""What each quantizable node costs on the target, in float and quantized.

cpu target: measured. ONNX Runtime profiles the FP32 graph and the fully quantized graph per node
(``edgekit.profile.layers``); a fused kernel keeps its node's name (``node_Conv_5_token_12``), and
the QuantizeLinear / DequantizeLinear kernels left between fused ones are charged to the quantized
nodes that read them, so a node's int8 cost includes the conversions it needs.
TensorRT targets: estimated from multiply-accumulates (int8 at a quarter of FP32's cost per MAC,
plus a conversion charge per quantized input), scaled to the FP32 latency measured here, and
marked ``measured=False``, until ``edgekit profile --layers`` measures the engine on the device.
"""
from __future__ import annotations

__all__ = ["NodeCost", "profiled_node_costs", "estimated_node_costs"]

import re
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

INT8_MAC_COST = 0.25
QDQ_COST = 0.02  # of a node's FP32 cost, per quantized input (estimate)


@dataclass(frozen=True)
class NodeCost:
    """Milliseconds per run of one node in float and quantized (conversions included).

    Attributes:
        measured: True for ONNX Runtime profiles on this machine, False for estimates.
    """

    fp32_ms: float
    int8_ms: float
    measured: bool = True

    @property
    def gain_ms(self) -> float:
        """Time saved by quantizing the node (negative: the quantized form is slower)."""
        return self.fp32_ms - self.int8_ms

    def to_dict(self) -> dict:
        return asdict(self) | {"gain_ms": self.gain_ms}


def _kernel_times(path: Path, feed: np.ndarray, runs: int, threads: int) -> dict[str, float]:
    """Mean ms per run of every kernel, by node name (fusion suffixes stripped)."""
    from edgekit.profile.layers import layers_from_ort_profile
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings

    with tempfile.TemporaryDirectory(prefix="edgekit-cost-") as tmp:
        runner = OnnxRuntimeRunner(path, SessionSettings(threads, "all", ("CPUExecutionProvider",), str(Path(tmp) / "ort")))
        with runner:
            name = runner.input_specs()[0].name
            for _ in range(runs + 1):
                runner.infer({name: feed})
        report = layers_from_ort_profile(runner.last_profile, top=1 << 30, skip_runs=1)
    resolve = _resolver(path)
    times: dict[str, float] = defaultdict(float)
    for layer in report.layers:
        times[resolve(re.sub(r"(_token_\d+)?(/duplicated)?$", "", layer.name))] += layer.ms
    return dict(times)


def _resolver(path: Path):
    """Kernel name -> graph node name. ONNX Runtime's NCHWc layout pass names a conv after its
    output tensor (``r1_nchwc``), after fusing the activation that followed it: walk back to the conv."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    names = {n.name for n in graph.node}
    producers = {o: n for n in graph.node for o in n.output}

    def resolve(kernel: str) -> str:
        if kernel in names or not kernel.endswith("_nchwc"):
            return kernel
        node = producers.get(kernel[: -len("_nchwc")])
        while node is not None and node.op_type not in ("Conv", "MatMul", "Gemm") and node.input:
            node = producers.get(node.input[0])
        return node.name if node is not None else kernel

    return resolve


def _conversion_readers(qdq_path: Path, nodes: set[str]) -> dict[str, list[str]]:
    """For each Q/DQ node of the graph: the quantizable nodes (of ``nodes``) that read its values."""
    import onnx

    graph = onnx.load(str(qdq_path), load_external_data=False).graph
    readers: dict[str, list] = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            readers[i].append(n)
    found: dict[str, list[str]] = {}
    for n in graph.node:
        if n.op_type == "DequantizeLinear":
            found[n.name] = [r.name for r in readers[n.output[0]] if r.name in nodes]
        elif n.op_type == "QuantizeLinear":
            dqs = [r for r in readers[n.output[0]] if r.op_type == "DequantizeLinear"]
            found[n.name] = [r.name for dq in dqs for r in readers[dq.output[0]] if r.name in nodes]
    return found


def profiled_node_costs(fp32_path: Path, qdq_path: Path, nodes: set[str], feed: np.ndarray,
                        runs: int = 5, threads: int = 0) -> dict[str, NodeCost]:
    """Per-node float and quantized cost of ``nodes`` from ONNX Runtime profiles of both graphs."""
    fp32 = _kernel_times(fp32_path, feed, runs, threads)
    int8 = _kernel_times(qdq_path, feed, runs, threads)
    quantized = {n: int8.get(n, 0.0) for n in nodes}
    for conversion, readers in _conversion_readers(qdq_path, nodes).items():
        if readers and conversion in int8:
            for r in readers:
                quantized[r] += int8[conversion] / len(readers)
    return {n: NodeCost(fp32.get(n, 0.0), quantized[n]) for n in nodes}


def _macs(model) -> dict[str, float]:
    """Multiply-accumulates of every Conv / MatMul / Gemm node, from inferred shapes."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
              for v in [*graph.value_info, *graph.input, *graph.output]}
    shapes.update({i.name: list(i.dims) for i in graph.initializer})
    macs = {}
    for n in graph.node:
        out, ins = shapes.get(n.output[0]), [shapes.get(i) for i in n.input[:2]]
        if n.op_type == "Conv" and out and ins[1]:
            macs[n.name] = float(np.prod(out)) * float(np.prod(ins[1][1:]))
        elif n.op_type in ("MatMul", "Gemm") and out and ins[0]:
            macs[n.name] = float(np.prod(out)) * float(ins[0][-1])
    return macs


def estimated_node_costs(fp32_path: Path, nodes: set[str], fp32_latency_ms: float) -> dict[str, NodeCost]:
    """MAC-proportional estimates (``measured=False``) whose FP32 total is ``fp32_latency_ms``."""
    import onnx

    macs = _macs(onnx.load(str(fp32_path)))
    total = sum(macs.values()) or 1.0
    costs = {}
    for n in nodes:
        fp32 = fp32_latency_ms * macs.get(n, 0.0) / total
        costs[n] = NodeCost(fp32, fp32 * (INT8_MAC_COST + 2 * QDQ_COST), measured=False)
    return costs
