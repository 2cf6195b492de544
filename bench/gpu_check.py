"""One prepared GPU check: every GPU path installed on this machine, run once, one table.

    python bench/gpu_check.py [--dry-run] [--json bench/results/gpu_check.json] [--quick]

What it runs, each where what it needs is installed (else one line saying why not):
  torch-cuda  the demo segmenter (fastvit_sa12_fpn) tiled over samples/bluemarble_east.jpg by the
              torch backend on CUDA, in float32, float16 and bfloat16, torch.compile off and on:
              agreement of its mask with the CPU reference mask, Mpx/s of `predict_mask` (edgekit's
              tiled path: reading, preprocessing, stitching) against a bare loop of the same model
              over the same tiles already on the GPU, and peak GPU memory;
  ort-cuda    the CPU artifact run by ONNX Runtime's CUDA provider (onnxruntime-gpu): agreement, Mpx/s;
  tensorrt    FP16 and INT8 engines of the demo segmenter and the demo detector built for a target
              made from this GPU, inferred, profiled and compared with the CPU artifact.
The CPU reference is the demo's FP32 artifact for the cpu target, built here (the build extra). ``--dry-run`` lists every check,
whether it would run and why, and runs nothing. Sized for one data-centre GPU in under 8 minutes.

On a machine without edgekit's dependencies (a lent GPU machine has torch, onnx and onnxruntime),
carry the missing ones as wheels (timm, safetensors, click, rich, pyyaml, tifffile, onnxslim) and
put them on PYTHONPATH before running this.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMAGE = ROOT / "samples" / "bluemarble_east.jpg"
SEGMENTER, DETECTOR = "fastvit_sa12_fpn", "mobileone_s0_trees"


@dataclass
class Row:
    check: str
    status: str  # "ran", "skipped", "failed", "would run"
    reason: str = ""
    figures: dict = field(default_factory=dict)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def environment() -> dict:
    """What this machine has, for the checks' decisions (cheap: nothing heavy is run)."""
    facts = {"torch": _has("torch"), "cuda": False, "gpu": None, "tensorrt": _has("tensorrt"), "ort_providers": []}
    if facts["torch"]:
        import torch

        facts["cuda"] = torch.cuda.is_available()
        facts["gpu"] = torch.cuda.get_device_name(0) if facts["cuda"] else None
        facts["torch_version"] = torch.__version__
    if _has("onnxruntime"):
        import onnxruntime

        facts["ort_providers"] = onnxruntime.get_available_providers()
        facts["onnxruntime"] = onnxruntime.__version__
    facts["build_extra"] = all(_has(m) for m in ("onnx", "onnxslim", "timm"))
    from edgekit.device import cuda_device

    facts["cuda_driver_gpu"] = cuda_device()[0]  # the driver's view, torch or not
    return facts


def plan(env: dict, quick: bool) -> list[tuple[str, str | None]]:
    """(check, reason it cannot run or None) for every check, in the order they run."""
    no_cuda = None if env["cuda"] else ("no CUDA device visible to torch" if env["torch"] else "torch is not installed")
    checks = [("reference: cpu", None if env["build_extra"] else "the CPU artifact needs the build extra (onnx, onnxslim, timm)")]
    for dtype in ("float32", "float16", "bfloat16"):
        for compiled in ((False,) if quick else (False, True)):
            checks.append((f"torch-cuda {dtype}{' compile' if compiled else ''}", no_cuda))
    ort = None if "CUDAExecutionProvider" in env["ort_providers"] else (
        "onnxruntime has no CUDAExecutionProvider here (pip install onnxruntime-gpu, never beside onnxruntime)")
    ort = ort or (None if env["cuda_driver_gpu"] else "no CUDA device (onnxruntime-gpu lists its providers without one)")
    checks.append(("ort-cuda fp32", ort or (None if env["build_extra"] else "the CPU artifact needs the build extra")))
    trt = None if env["tensorrt"] else "tensorrt does not import (NVIDIA's index or JetPack)"
    for model in (SEGMENTER, DETECTOR):
        for precision in ("fp16", "int8"):
            checks.append((f"tensorrt {model} {precision}", trt or no_cuda))
    return checks


def _reference(work: Path, env: dict) -> tuple[object, object, str]:
    """(the demo's FP32 cpu artifact, its mask of the image, how it was made)."""
    from edgekit.artifact.folder import load_artifact
    from edgekit.convert.pipeline import BuildConfig, build
    from edgekit.tiling.execute import predict_mask

    build(SEGMENTER, work / "cpu_fp32", BuildConfig(target="cpu", precision="fp32", latency_runs=0))
    artifact = load_artifact(work / "cpu_fp32")
    return artifact, predict_mask(artifact, IMAGE), "demo FP32 cpu artifact on ONNX Runtime (CPU)"


def _bare_mpx(runner, artifact, image_px: int, tiles) -> float:
    """Mpx/s of the model alone over ready tiles already on the device (same batches as the tiled run)."""
    import torch

    x = torch.from_numpy(tiles).to(runner.device).to(runner._torch_dtype(torch))
    with torch.inference_mode():
        runner.model(x[:1])
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(x), 1):
            runner.model(x[i:i + 1])
        torch.cuda.synchronize()
    return image_px / 1e6 / (time.perf_counter() - start)


def _tiles(artifact) -> "object":
    """The image's model inputs at the artifact's tile, on a grid stepping a tile minus the overlap."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(IMAGE).convert("RGB"))
    th, tw = artifact.manifest.tile
    step = th - 64
    rows = range(0, max(pixels.shape[0] - th, 0) + 1, step)
    cols = range(0, max(pixels.shape[1] - tw, 0) + 1, step)
    cuts = [pixels[r:r + th, c:c + tw] for r in rows for c in cols]
    return artifact.manifest.preprocess.apply(np.stack(cuts))


def torch_cuda(artifact, reference, dtype: str, compiled: bool) -> dict:
    import torch

    from edgekit.metrics import agreement
    from edgekit.runtime.torch_runner import TorchRunner
    from edgekit.tiling.execute import predict_mask

    runner = TorchRunner.from_manifest(artifact.manifest, artifact.folder, device="cuda", dtype=dtype, compile=compiled)
    torch.cuda.reset_peak_memory_stats()
    with runner:
        start = time.perf_counter()
        predict_mask(artifact, IMAGE, runner=runner)  # warm-up (and compilation)
        warm = time.perf_counter() - start
        start = time.perf_counter()
        mask = predict_mask(artifact, IMAGE, runner=runner)
        seconds = time.perf_counter() - start
        image_px = mask.size
        bare = _bare_mpx(runner, artifact, image_px, _tiles(artifact))
    tiled = image_px / 1e6 / seconds
    return {"agreement": float(agreement(reference, mask)), "mpx_s": tiled, "bare_mpx_s": bare,
            "tiled_over_bare": tiled / bare, "first_run_s": warm,
            "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20}


def ort_cuda(artifact, reference) -> dict:
    from edgekit.metrics import agreement
    from edgekit.runtime.open import open_runner
    from edgekit.tiling.execute import predict_mask

    with open_runner(artifact, "onnxruntime", providers=("CUDAExecutionProvider",)) as runner:
        if "CUDAExecutionProvider" not in runner.providers:
            raise RuntimeError(f"session fell back to {runner.providers}")
        predict_mask(artifact, IMAGE, runner=runner)
        start = time.perf_counter()
        mask = predict_mask(artifact, IMAGE, runner=runner)
        seconds = time.perf_counter() - start
    return {"agreement": float(agreement(reference, mask)), "mpx_s": mask.size / 1e6 / seconds}


def tensorrt_engine(work: Path, model: str, precision: str, reference_artifact) -> dict:
    """Build for a target made from this GPU (compile runs in the build where tensorrt imports),
    then profile; segmenters are compared with the CPU mask."""
    import tensorrt

    from edgekit.artifact.folder import load_artifact
    from edgekit.convert.pipeline import BuildConfig, build
    from edgekit.profile.measure import profile_artifact
    from edgekit.device import local_device

    device = local_device()
    line = ".".join(tensorrt.__version__.split(".")[:2])
    targets = work / "targets"
    targets.mkdir(exist_ok=True)
    (targets / "this-gpu.yaml").write_text(
        f"name: this-gpu\nkind: desktop\nbackend: tensorrt\ncompute_capability: \"{device.compute_capability}\"\n"
        f"tensorrt: \"{line}\"\nbatch: 4\n")
    calib = ROOT / "calib" / "bluemarble"  # the detector's INT8 too: real photos, the range check is what matters here
    out = work / f"trt_{model}_{precision}"
    start = time.perf_counter()
    result = build(model, out, BuildConfig(target="this-gpu", targets_dir=targets, precision=precision,
                                           calib=calib if precision == "int8" else None, latency_runs=0))
    figures = {"build_s": time.perf_counter() - start, "complete": result.complete}
    report = profile_artifact(out)
    first = report.batches[0]
    figures |= {"p50_ms": first.end_to_end.p50, "images_s": first.images_per_s,
                "mpx_s": first.mpx_per_s, "batch": first.batch}
    if model == SEGMENTER and reference_artifact is not None:
        from edgekit.metrics import agreement
        from edgekit.tiling.execute import predict_mask

        figures["agreement"] = float(agreement(predict_mask(reference_artifact, IMAGE), predict_mask(load_artifact(out), IMAGE)))
    return figures


def run(env: dict, quick: bool, dry: bool) -> list[Row]:
    checks = plan(env, quick)
    if dry:
        return [Row(name, "would run" if why is None else "skipped", why or "installed here") for name, why in checks]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        artifact = reference = None
        for name, why in checks:
            if why is not None:
                rows.append(Row(name, "skipped", why))
                print(f"skip {name}: {why}", flush=True)
                continue
            print(f"run  {name}", flush=True)
            try:
                if name == "reference: cpu":
                    artifact, reference, how = _reference(work, env)
                    rows.append(Row(name, "ran", how, {"pixels": int(reference.size)}))
                    continue
                if reference is None:
                    raise RuntimeError("no CPU reference (its check failed)")
                kind, *rest = name.split()
                if kind == "torch-cuda":
                    figures = torch_cuda(artifact, reference, rest[0], "compile" in rest)
                elif kind == "ort-cuda":
                    figures = ort_cuda(artifact, reference)
                else:
                    figures = tensorrt_engine(work, rest[0], rest[1], artifact)
                rows.append(Row(name, "ran", "", figures))
            except Exception as exc:  # a GPU path that breaks is a finding: keep going, say what broke
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                rows.append(Row(name, "failed", f"{type(exc).__name__}: {first}"))
    return rows


def table(rows: list[Row]) -> str:
    keys = ("agreement", "mpx_s", "bare_mpx_s", "tiled_over_bare", "peak_gpu_mib", "first_run_s", "build_s")
    lines = ["| check | status | " + " | ".join(keys) + " | note |", "|" + "---|" * (len(keys) + 3)]
    for r in rows:
        cells = [f"{r.figures[k]:.4g}" if isinstance(r.figures.get(k), float) else str(r.figures.get(k, "")) for k in keys]
        lines.append(f"| {r.check} | {r.status} | " + " | ".join(cells) + f" | {r.reason} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list the checks, whether each would run and why; run nothing")
    parser.add_argument("--quick", action="store_true", help="torch.compile left out (the longest checks)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "gpu_check.json")
    args = parser.parse_args(argv)
    env = environment()
    print(f"machine: gpu {env['gpu'] or 'none'}; torch {env.get('torch_version', 'absent')}; "
          f"onnxruntime providers {', '.join(env['ort_providers']) or 'absent'}; tensorrt {'present' if env['tensorrt'] else 'absent'}")
    rows = run(env, args.quick, args.dry_run)
    print(table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"environment": env, "dry_run": args.dry_run, "date": time.strftime("%Y-%m-%d %H:%M"),
                                     "rows": [asdict(r) for r in rows]}, indent=2, default=str))
    print(f"wrote {args.json}")
    return 1 if any(r.status == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
