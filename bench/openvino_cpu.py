"""Is OpenVINO a faster CPU runtime than ONNX Runtime for edgekit's graphs? FP32, same ONNX, interleaved.

For each model the ONNX file edgekit's export stage writes (reparameterized, verified) is run by
ONNX Runtime's CPU provider and by OpenVINO's CPU plugin (``compile_model`` on the ONNX file,
latency hint, default threads, ``INFERENCE_PRECISION_HINT`` f32: on a CPU with AMX or AVX-512 BF16
OpenVINO otherwise runs "FP32" models in bf16, which is not the comparison), in turns, batch 1. OpenVINO is added as an edgekit backend only
if it wins by >= 1.2x on at least two models (issue 14); the table goes to docs/openvino.md.

    pip install openvino && python bench/openvino_cpu.py --out /tmp/edgekit_openvino [--runs 7]
"""
from __future__ import annotations

import argparse
from pathlib import Path

MODELS = (("fastvit_sa12_fpn", 512), ("mobileone_s1", 224), ("convnext_tiny_linear", 224), ("vit_s16_linear", 224))


def exported(recipe: str, size: int, out: Path) -> Path:
    import torch

    from edgekit.convert.export import ExportSpec, export_onnx
    from edgekit.convert.reparam import reparameterize
    from edgekit.convert.source import resolve_source

    src = resolve_source(recipe, (size, size), None, "segmentation")
    model = src.load_model()
    rep = reparameterize(model, torch.randn(1, 3, size, size)).model
    return export_onnx(rep, out / f"{recipe}_{size}.onnx", ExportSpec((size, size), timing_runs=0)).path


def interleaved(path: Path, runs: int) -> tuple[float, float, float]:
    """(ORT ms, OpenVINO ms, max abs difference) of one ONNX file."""
    import numpy as np
    import openvino as ov

    from edgekit.profile.latency import interleaved_medians
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path) as ort_runner:
        spec = ort_runner.input_specs()[0]
        x = np.random.default_rng(0).standard_normal(spec.shape).astype(np.float32)
        compiled = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        diff = float(np.abs(next(iter(ort_runner.infer({spec.name: x}).values())) - request.infer([x])[0]).max())
        ort_ms, ov_ms = interleaved_medians([lambda: ort_runner.infer({spec.name: x}), lambda: request.infer([x])], runs)
    return ort_ms, ov_ms, diff


def main() -> None:
    import onnxruntime
    import openvino

    from edgekit.profile.conditions import cpu_name, cpu_vnni

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgekit_openvino"))
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    vnni = cpu_vnni()
    print(f"CPU: {cpu_name()}, {'VNNI: ' + ' '.join(vnni) if vnni else 'no VNNI'}; "
          f"ONNX Runtime {onnxruntime.__version__}, OpenVINO {openvino.__version__}")
    print("| model | size | ORT FP32 ms | OpenVINO FP32 ms | OpenVINO speed-up | max abs diff |\n|---|---|---|---|---|---|")
    wins = 0
    for recipe, size in MODELS:
        ort_ms, ov_ms, diff = interleaved(exported(recipe, size, args.out), args.runs)
        wins += ort_ms / ov_ms >= 1.2
        print(f"| {recipe} | {size} | {ort_ms:.1f} | {ov_ms:.1f} | {ort_ms / ov_ms:.2f}x | {diff:.1e} |", flush=True)
    print(f"OpenVINO wins by >= 1.2x on {wins} of {len(MODELS)}: {'add it' if wins >= 2 else 'leave it out'}")


if __name__ == "__main__":
    main()
