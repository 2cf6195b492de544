"""The DINOv3 question, with trained models: can a ViT-S/16 segmenter (DINOv3 layout, linear head)
be cut to run as fast as ConvNeXt-Tiny + linear head, and at what accuracy, beside FastViT-SA12 + FPN?

1. Train ViT-S/16 (timm vit_small_patch16_dinov3: RoPE, registers) + linear head and ConvNeXt-Tiny +
   linear head on Blue Marble as the demo model was (scripts/train_demo.py: random crops west of
   45E, from scratch: no pretrained weights can be downloaded here), resumably, into <out>/.
   The ViT trains at 256-pixel crops with a dynamic-size copy of its recipe (RoPE has no learned
   positions: the weights are the same) and is built at 512 with the shipped, fixed-size layout.
2. Compress the trained ViT at level 3 (fewer blocks, narrower embedding, pruned MLPs, distilled
   from the original on calib/bluemarble) to run as fast as the trained ConvNeXt-T on this CPU
   (--speedup = the ViT's latency over ConvNeXt-T's, both timed in turns in this run).
3. `sweep` all four at 512, FP32 and INT8: latency, size and mIoU on calib/bluemarble_val against
   the real masks (east of 45E, held out); <out>/sweep.md, sweep.json, sweep.png.

    PYTHONPATH=. nice -n 5 python bench/dinov3_question.py [--steps 600] [--out runs/dinov3]
Every step resumes: training from <out>/<name>_run/last.pt, compress from edgekit's cache.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "edgekit" / "data" / "models"
CALIB, VAL = ROOT / "calib" / "bluemarble", ROOT / "calib" / "bluemarble_val"


def recipe_copy(name: str, out: Path, suffix: str, **model) -> Path:
    """The shipped recipe ``name`` with trained weights (and ``model`` keys) as a file in ``out``."""
    data = yaml.safe_load((MODELS / f"{name}.yaml").read_text())
    data["name"] = f"{name}_{suffix}"
    data["summary"] = data["summary"].replace("random weights, speed only", "trained on Blue Marble by bench/dinov3_question.py")
    data["model"].update(model)
    data["checkpoint"] = str((out / f"{name}.safetensors").resolve())
    path = out / f"{name}_{suffix}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def train(name: str, out: Path, steps: int, batch: int, lr: float, **model) -> Path:
    weights = out / f"{name}.safetensors"
    recipe = recipe_copy(name, out, "train", **model)
    if not weights.is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "train_demo.py"), "--recipe", str(recipe),
                        "--steps", str(steps), "--batch", str(batch), "--crop", "256", "--lr", str(lr),
                        "--run", str(out / f"{name}_run"), "--out", str(weights)], check=True)
    return recipe_copy(name, out, "bluemarble")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600, help="training steps of each model (batch 8, 256 crops)")
    ap.add_argument("--recovery", type=int, default=50, help="distillation steps of the compressed ViT (level 3: x2; "
                    "9.6 s a step at 512 on a 2-core Xeon)")
    ap.add_argument("--max-drop", type=float, default=3.0, help="mIoU points the compressed ViT may lose")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of timing per artifact")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "dinov3")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    say = lambda m: print(f"[{time.perf_counter() - start:7.0f} s] {m}", flush=True)  # noqa: E731

    vit = train("vit_s16_linear", args.out, args.steps, 8, 1e-3, fixed_size=False)
    convnext = train("convnext_tiny_linear", args.out, args.steps, 8, 2e-3)
    say("trained")

    import tempfile

    from edgekit.compress.distill import DistillSettings
    from edgekit.compress.pipeline import CompressConfig, compress
    from edgekit.compress.search import Goal
    from edgekit.convert.export import ExportSpec, export_onnx
    from edgekit.convert.onnx_check import time_onnx
    from edgekit.convert.source import resolve_source
    from edgekit.cache import default_cache_dir

    with tempfile.TemporaryDirectory() as tmp:  # the two originals timed in turns: the ViT's speed-up goal
        paths = []
        for recipe in (vit, convnext):
            src = resolve_source(str(recipe), None, None, "segmentation")
            paths.append(export_onnx(src.load_model(), Path(tmp) / f"{src.recipe.name}.onnx",
                                     ExportSpec(src.recipe.input_size)).path)
        vit_ms, convnext_ms = time_onnx(paths, runs=7)
    say(f"512x512, ONNX Runtime CPU, in turns: ViT-S/16 {vit_ms:.1f} ms, ConvNeXt-T {convnext_ms:.1f} ms: "
        f"the ViT must run {vit_ms / convnext_ms:.2f}x faster")
    if vit_ms <= convnext_ms:
        say("the ViT is already as fast as ConvNeXt-T here: it is compressed to run 1.25x faster instead")
    small = args.out / "vit_s16_compressed"
    config = CompressConfig(images=CALIB, val=VAL, level=3, train_samples=20, batch=2, cache=default_cache_dir(),
                            recovery=DistillSettings(steps=args.recovery, eval_every=max(args.recovery // 6, 1)))
    speedup = vit_ms / convnext_ms if vit_ms > convnext_ms else 1.25
    result = compress(str(vit), small, Goal(args.max_drop, speedup=speedup), config, progress=say)
    r = result.report
    say(f"compressed ViT: {r.plan}, {r.before['latency_ms']:.1f} -> {r.after['latency_ms']:.1f} ms, "
        f"val mIoU {r.accuracy['before']:.4f} -> {r.accuracy['after']:.4f}; search {r.seconds['search'] / 60:.1f} min, "
        f"recovery {r.seconds['recovery'] / 60:.1f} min")

    from edgekit.sweep import SweepConfig, plot_sweep, sweep

    config = SweepConfig(target="cpu", precisions=("fp32", "int8"), sizes=((512, 512),), calib=CALIB, val=VAL,
                         duration_s=args.duration, keep=args.out / "artifacts")
    report = sweep(["fastvit_sa12_fpn", str(convnext), str(vit), str(small)], config, progress=say)
    (args.out / "sweep.md").write_text(report.to_markdown())
    report.write_json(args.out / "sweep.json")
    plot_sweep(report, args.out / "sweep.png")
    print(report.to_markdown())
    say("done")


if __name__ == "__main__":
    main()
