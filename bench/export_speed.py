"""Does the reparameterization gain survive export? edgekit FP32 vs plain exports, on ONNX Runtime CPU.

1. FastViT-SA12 (timm classifier, random weights) at 1024x1024: the plain
   ``torch.onnx.export(dynamo=False)`` of the un-reparameterized model, the reparameterized
   module through each exporter as it comes (dynamo raw, TorchScript), and edgekit's FP32 artifact
   (``edgekit build timm:fastvit_sa12``). Target: edgekit >= 1.25x of plain.
2. The demo model (fastvit_sa12_fpn, trained weights) at 512 and 1024: edgekit FP32 vs the plain
   export of the un-reparameterized model. Target >= 1.15x.
3. ViT-S/16 and DeiT-S at 512 (timm, random weights): ONNX Runtime's transformer fusions
   (edgekit.convert.fuse) vs the same simplified graph unfused.
4. The dynamo exporter's own optimizer on (torch's default) vs off (edgekit's): export seconds,
   GELUs put in ONNX Runtime's fusable order, nodes after the simplify stage, and the simplified
   graphs' outputs and latency side by side, on the demo model at 512 and ViT-S/16 at 512 and 1024.

Latencies are interleaved medians (edgekit.convert.onnx_check.time_onnx: A, B, A, B... after
one warm-up each), batch 1, ORT's default threads. The machine may be shared: compare ratios
within one run only. Prints the CPU and ORT version.

    python bench/export_speed.py --out /tmp/edgekit_export_speed [--runs 7] [--only 1,2,3,4]
"""
from __future__ import annotations

import argparse
import io
import warnings
from contextlib import redirect_stdout
from pathlib import Path


def plain_export(model, size: int, path: Path, dynamo: bool = False) -> Path:
    import torch

    x = torch.randn(1, 3, size, size)
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(path), dynamo=dynamo, opset_version=18 if dynamo else 17,
                          input_names=["input"], external_data=False)
    return path


def edgekit_fp32(source: str, size: int, out: Path) -> Path:
    from edgekit.convert.pipeline import BuildConfig, build

    result = build(source, out, BuildConfig(input_size=(size, size), latency_runs=0))
    print(f"  edgekit export choice: {result.report.details.get('export')}")
    return out / result.manifest.model_file


def nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def table(title: str, named: dict[str, Path], runs: int, base: str) -> None:
    from edgekit.convert.onnx_check import time_onnx

    ms = dict(zip(named, time_onnx(list(named.values()), runs)))
    print(f"\n{title}\n| graph | nodes | ms | vs {base} |\n|---|---|---|---|")
    for name, path in named.items():
        print(f"| {name} | {nodes(path)} | {ms[name]:.1f} | {ms[base] / ms[name]:.2f}x |")


def fastvit_classifier(out: Path, runs: int) -> None:
    import timm
    import torch
    from timm.utils.model import reparameterize_model

    size = 1024
    torch.manual_seed(0)
    model = timm.create_model("fastvit_sa12", pretrained=False).eval()
    rep = reparameterize_model(model).eval()
    named = {"plain TorchScript, not reparameterized": plain_export(model, size, out / "fv_plain.onnx"),
             "timm reparam + TorchScript": plain_export(rep, size, out / "fv_rep_ts.onnx"),
             "timm reparam + dynamo (raw)": plain_export(rep, size, out / "fv_rep_dyn.onnx", dynamo=True),
             "edgekit FP32": edgekit_fp32("timm:fastvit_sa12", size, out / "fv_edgekit")}
    table(f"FastViT-SA12 classifier {size}x{size}", named, runs, "plain TorchScript, not reparameterized")


def demo(out: Path, runs: int) -> None:
    from edgekit.convert.source import resolve_source

    for size in (512, 1024):
        model = resolve_source("fastvit_sa12_fpn", (size, size), None, "segmentation").load_model()
        named = {"plain TorchScript, not reparameterized": plain_export(model, size, out / f"demo{size}_plain.onnx"),
                 "edgekit FP32": edgekit_fp32("fastvit_sa12_fpn", size, out / f"demo{size}_edgekit")}
        table(f"demo model (fastvit_sa12_fpn) {size}x{size}", named, runs, "plain TorchScript, not reparameterized")


def transformers(out: Path, runs: int) -> None:
    import timm
    import torch

    from edgekit.convert.export import ExportSpec, export_onnx
    from edgekit.convert.fuse import fuse_transformer
    from edgekit.convert.simplify import simplify_onnx

    for name in ("vit_small_patch16_224", "deit_small_patch16_224"):
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, img_size=512).eval()
        exported = export_onnx(model, out / f"{name}.onnx", ExportSpec((512, 512), output_name="scores"))
        simple = simplify_onnx(exported.path, out / f"{name}.sim.onnx")
        fused = fuse_transformer(simple.path, out / f"{name}.fused.onnx", runs=runs)
        print(f"\n{name} 512x512 ({exported.exporter} exporter): fused {fused.fused}, "
              f"max rel {fused.error.max_rel:.1e}, kept={fused.kept} ({fused.reason})")
        if fused.kept:
            table(f"{name} 512x512 fused vs unfused (second measurement)",
                  {"unfused": simple.path, "fused": fused.path}, runs, "unfused")
        else:
            ms = fused.latency_ms
            print(f"unfused {ms['unfused']:.1f} ms, fused {ms['fused']:.1f} ms: {ms['unfused'] / ms['fused']:.2f}x")


def dynamo_optimizer(out: Path, runs: int) -> None:
    import time

    import numpy as np
    import timm
    import torch

    import edgekit.convert.export as export
    from edgekit.convert.export import ExportSpec, export_onnx
    from edgekit.convert.onnx_check import run_onnx
    from edgekit.convert.reparam import reparameterize
    from edgekit.convert.simplify import simplify_onnx
    from edgekit.convert.source import resolve_source

    cases = [("demo model (fastvit_sa12_fpn)", 512, lambda s: resolve_source("fastvit_sa12_fpn", (s, s), None,
                                                                              "segmentation").load_model()),
             ("ViT-S/16", 512, lambda s: timm.create_model("vit_small_patch16_224", pretrained=False, img_size=s)),
             ("ViT-S/16", 1024, lambda s: timm.create_model("vit_small_patch16_224", pretrained=False, img_size=s))]
    for name, size, make in cases:
        torch.manual_seed(0)
        model = make(size).eval()
        model = reparameterize(model, torch.randn(1, 3, size, size)).model  # as the build exports it
        row, paths = {}, {}
        for optimize in (True, False):
            export.DYNAMO_OPTIMIZE = optimize
            tag = "on" if optimize else "off"
            t0 = time.perf_counter()
            # runtime tensorrt: the dynamo graph alone, untimed (the exporter choice is not under test)
            stem = f"opt_{name.split()[0].replace('/', '')}{size}_{tag}"
            got = export_onnx(model, out / f"{stem}.onnx", ExportSpec((size, size), runtime="tensorrt"))
            seconds = time.perf_counter() - t0
            simple = simplify_onnx(got.path, out / f"{stem}.sim.onnx")
            paths[tag] = simple.path
            c = got.candidates[0]
            row[tag] = (seconds, c.nodes, c.gelus_reordered, nodes(simple.path), got.error.max_rel)
        export.DYNAMO_OPTIMIZE = False
        x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        a, b = run_onnx(paths["on"], x), run_onnx(paths["off"], x)
        diff = float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))
        print(f"\n{name} {size}x{size}: dynamo optimizer on vs off (simplified graphs differ by max rel {diff:.1e})")
        print("| optimizer | export s | nodes exported | GELUs reordered | nodes simplified | max rel vs PyTorch |")
        print("|---|---|---|---|---|---|")
        for tag, (seconds, n, gelus, simplified, rel) in row.items():
            print(f"| {tag} | {seconds:.1f} | {n} | {gelus} | {simplified} | {rel:.1e} |")
        table(f"{name} {size}x{size}, simplified graphs", {"optimizer on": paths["on"], "optimizer off": paths["off"]},
              runs, "optimizer on")


def main() -> None:
    import onnxruntime

    from edgekit.machine import cpu_name, cpu_vnni

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgekit_export_speed"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", default="1,2,3")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    vnni = cpu_vnni()
    print(f"CPU: {cpu_name()}, {'VNNI: ' + ' '.join(vnni) if vnni else 'no VNNI'}; ONNX Runtime {onnxruntime.__version__}")
    parts = {"1": fastvit_classifier, "2": demo, "3": transformers, "4": dynamo_optimizer}
    for key in args.only.split(","):
        parts[key](args.out, args.runs)


if __name__ == "__main__":
    main()
