"""The conformance table: architectures users deploy, built FP32, FP16 and INT8 for the cpu target.

Every architecture is built from its source as a user would name it (``timm:<name>`` or a
torchvision ``module:factory`` with ``--factory-arg``), random weights, nothing downloaded, at each
precision (not from the FP32 artifact's ONNX: on the cpu target a transformer's FP32 artifact holds
ONNX Runtime's fused ops, which fp16 AutoCast cannot take). Each build runs in a child process, so a crash or an OOM kill is a row, not the end of the
table. The table (stage reached, error, seconds) goes to docs/zoo.md.

    python bench/zoo.py                      # every architecture, writes docs/zoo.md
    python bench/zoo.py --only resnet18,vit_small --out /tmp/zoo --md /tmp/zoo.md
    python bench/zoo.py --only mobilevitv2 --update "after the fix of ..."   # rebuild rows, keep the rest
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALIB = ROOT / "calib" / "bluemarble"
TV_SEG = ("--factory-arg", "weights_backbone=None", "--factory-arg", "num_classes=3", "--task", "segmentation")

# (family, name, source, input size, extra build options)
ZOO = [
    ("ResNet", "resnet18", "timm:resnet18", 224, ()),
    ("ResNet", "resnet50", "timm:resnet50", 224, ()),
    ("ResNet", "resnet18 (torchvision)", "torchvision.models:resnet18", 224, ()),
    ("EfficientNet", "efficientnet_b0", "timm:efficientnet_b0", 224, ()),
    ("EfficientNet", "efficientnet_b0 (torchvision)", "torchvision.models:efficientnet_b0", 224, ()),
    ("EfficientNet", "tf_efficientnetv2_b0", "timm:tf_efficientnetv2_b0", 224, ()),
    ("MobileNetV2", "mobilenetv2_100", "timm:mobilenetv2_100", 224, ()),
    ("MobileNetV2", "mobilenet_v2 (torchvision)", "torchvision.models:mobilenet_v2", 224, ()),
    ("MobileNetV3", "mobilenetv3_large_100", "timm:mobilenetv3_large_100", 224, ()),
    ("MobileNetV3", "mobilenetv3_small_100", "timm:mobilenetv3_small_100", 224, ()),
    ("MobileNetV4", "mobilenetv4_conv_small", "timm:mobilenetv4_conv_small", 224, ()),
    ("RegNet", "regnety_008", "timm:regnety_008", 224, ()),
    ("RegNet", "regnet_y_400mf (torchvision)", "torchvision.models:regnet_y_400mf", 224, ()),
    ("ConvNeXt", "convnext_tiny", "timm:convnext_tiny", 224, ()),
    ("ConvNeXt", "convnext_atto", "timm:convnext_atto", 224, ()),
    ("ViT", "vit_small_patch16_224", "timm:vit_small_patch16_224", 224, ()),
    ("ViT", "vit_tiny_patch16_224", "timm:vit_tiny_patch16_224", 224, ()),
    ("DeiT", "deit_small_patch16_224", "timm:deit_small_patch16_224", 224, ()),
    ("Swin", "swin_tiny_patch4_window7_224", "timm:swin_tiny_patch4_window7_224", 224, ()),
    ("LeViT", "levit_128s", "timm:levit_128s", 224, ()),
    ("EfficientViT", "efficientvit_b0", "timm:efficientvit_b0", 224, ()),
    ("EfficientViT", "efficientvit_m0", "timm:efficientvit_m0", 224, ()),
    ("MobileViT", "mobilevit_xs", "timm:mobilevit_xs", 256, ()),
    ("MobileViT", "mobilevitv2_050", "timm:mobilevitv2_050", 256, ()),
    ("RepVGG", "repvgg_a0", "timm:repvgg_a0", 224, ()),
    ("MobileOne", "mobileone_s0", "timm:mobileone_s0", 224, ()),
    ("MobileOne", "mobileone_s1", "timm:mobileone_s1", 224, ()),
    ("FastViT", "fastvit_t8", "timm:fastvit_t8", 256, ()),
    ("FastViT", "fastvit_sa12", "timm:fastvit_sa12", 256, ()),
    ("GhostNet", "ghostnet_100", "timm:ghostnet_100", 224, ()),
    ("HRNet", "hrnet_w18_small", "timm:hrnet_w18_small", 224, ()),
    ("DenseNet", "densenet121", "timm:densenet121", 224, ()),
    ("ShuffleNet", "shufflenet_v2_x1_0 (torchvision)", "torchvision.models:shufflenet_v2_x1_0", 224, ()),
    ("SqueezeNet", "squeezenet1_1 (torchvision)", "torchvision.models:squeezenet1_1", 224, ()),
    ("MNASNet", "mnasnet0_5 (torchvision)", "torchvision.models:mnasnet0_5", 224, ()),
    ("ReXNet", "rexnet_100", "timm:rexnet_100", 224, ()),
    ("LCNet", "lcnet_050", "timm:lcnet_050", 224, ()),
    ("EdgeNeXt", "edgenext_xx_small", "timm:edgenext_xx_small", 256, ()),
    ("PoolFormer", "poolformer_s12", "timm:poolformer_s12", 224, ()),
    ("PVTv2", "pvt_v2_b0", "timm:pvt_v2_b0", 224, ()),
    ("HGNetV2", "hgnetv2_b0", "timm:hgnetv2_b0", 224, ()),
    ("DLA", "dla34", "timm:dla34", 224, ()),
    ("DeepLabV3", "deeplabv3_mobilenet_v3_large", "torchvision.models.segmentation:deeplabv3_mobilenet_v3_large", 256, TV_SEG),
    ("DeepLabV3", "deeplabv3_resnet50", "torchvision.models.segmentation:deeplabv3_resnet50", 256, TV_SEG),
    ("LR-ASPP", "lraspp_mobilenet_v3_large", "torchvision.models.segmentation:lraspp_mobilenet_v3_large", 256, TV_SEG),
    ("FCN", "fcn_resnet50", "torchvision.models.segmentation:fcn_resnet50", 256, TV_SEG),
]
PRECISIONS = ("fp32", "fp16", "int8")


def _stage(out: Path) -> str:
    """The stage a failed build reached (written by the child as it goes)."""
    try:
        return (out / "stage.txt").read_text().strip() or "-"
    except OSError:
        return "-"


def build_one(source: str, size: int, precision: str, extra: tuple, out: Path, timeout: int) -> dict:
    """One build in a child process: status, stage reached, error line, seconds."""
    out.mkdir(parents=True, exist_ok=True)
    artifact = out / precision
    args = [sys.executable, __file__, "--child", str(out / "stage.txt"), "build", source, "-o", str(artifact),
            "--target", "cpu", "--precision", precision, "--input-size", str(size), "--latency-runs", "0", *extra]
    if precision == "int8":
        args += ["--calib", str(CALIB), "--calib-samples", "8"]
    (out / "stage.txt").write_text("start")
    start = time.perf_counter()
    try:
        run = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        code, err = run.returncode, (run.stderr.strip().splitlines() or [""])[-1]
    except subprocess.TimeoutExpired:
        code, err = -1, f"timed out after {timeout} s"
    seconds = time.perf_counter() - start
    status = "built" if code == 0 else ("killed" if code < 0 else "refused" if code == 2 else "crashed")
    return {"precision": precision, "status": status, "stage": "done" if code == 0 else _stage(out),
            "error": "" if code == 0 else err.replace("edgekit: error: ", "")[:240], "seconds": round(seconds, 1)}


def _child(stage_file: str, argv: list[str]) -> int:
    """Run `edgekit build` in this process, writing each stage to ``stage_file`` as it starts."""
    from edgekit.cli.main import main
    from edgekit.convert import pipeline

    original = pipeline.build

    def build(source, out, config=pipeline.BuildConfig(), progress=None):
        def say(msg):
            Path(stage_file).write_text(msg)
            if progress:
                progress(msg)
        return original(source, out, config, say)

    pipeline.build = build
    return main(argv)


def markdown(rows: list[dict], machine: str, planned: int | None = None, notes: list[str] | None = None) -> str:
    lines = ["# Conformance: architectures users deploy, built for the cpu target", "",
             "Written by `python bench/zoo.py`. Random weights (nothing downloaded), one child process per build;",
             "each precision from the source. INT8: ORT static QDQ, 8 calibration tiles of",
             "calib/bluemarble. Accuracy is not judged here (random weights): a build that finishes passed every",
             f"stage's own parity check. Machine: {machine}.", "",
             "| family | architecture | input | fp32 | fp16 | int8 | seconds (fp32/fp16/int8) | failure |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        builds = {b["precision"]: b for b in row["builds"]}
        cells = [builds[p]["status"] + ("" if builds[p]["status"] == "built" else f" at {builds[p]['stage']}")
                 if p in builds else "-" for p in PRECISIONS]
        secs = "/".join(f"{builds[p]['seconds']:.0f}" if p in builds else "-" for p in PRECISIONS)
        fail = "; ".join(f"{p}: {builds[p]['error']}" for p in PRECISIONS if p in builds and builds[p]["error"])
        lines.append(f"| {row['family']} | {row['name']} | {row['size']} | {' | '.join(cells)} | {secs} | {fail or '-'} |")
    n = len(rows)
    count = {p: sum(any(b["precision"] == p and b["status"] == "built" for b in r["builds"]) for r in rows) for p in PRECISIONS}
    lines += ["", f"Built: FP32 {count['fp32']}/{n}, FP16 {count['fp16']}/{n}, INT8 {count['int8']}/{n} "
              f"({100 * count['int8'] / max(n, 1):.0f} %)."]
    if planned and planned > n:
        lines.append(f"Not run: {planned - n} of the {planned} architectures (the run was stopped before them).")
    lines += [f"Rebuilt later: {note}" for note in notes or ()]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.exit(_child(sys.argv[2], sys.argv[3:]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/edgekit_zoo"))
    ap.add_argument("--md", type=Path, default=ROOT / "docs" / "zoo.md")
    ap.add_argument("--only", default="", help="comma-separated substrings of architecture names")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per build")
    ap.add_argument("--update", metavar="WHY", help="rebuild the --only rows, keep the other rows of OUT/zoo.json")
    args = ap.parse_args()
    wanted = [w for w in args.only.split(",") if w]
    zoo = [z for z in ZOO if not wanted or any(w in z[1] for w in wanted)]
    from edgekit.machine import cpu_name, cpu_vnni

    import onnxruntime

    machine = (f"{cpu_name()} ({' '.join(cpu_vnni()) or 'no VNNI'}), ONNX Runtime {onnxruntime.__version__}, "
               f"Python {platform.python_version()}")
    rows, results = [], args.out / "zoo.json"
    kept, notes = {}, []
    if args.update:
        saved = json.loads(results.read_text())
        kept = {r["name"]: r for r in (saved["rows"] if isinstance(saved, dict) else saved)}
        notes = list(saved.get("notes", [])) if isinstance(saved, dict) else []
        notes.append(f"{', '.join(z[1] for z in zoo)}: {args.update}")
        zoo = ZOO
    for family, name, source, size, extra in zoo:
        if name in kept and not any(w in name for w in wanted):
            rows.append(kept[name])
            continue
        folder = args.out / name.split(" ")[0].replace("/", "_") / ("tv" if "torchvision" in source else "timm")
        builds = []
        for precision in PRECISIONS:
            builds.append(build_one(source, size, precision, extra, folder, args.timeout))
            print(f"{name:34} {precision:5} {builds[-1]['status']:8} {builds[-1]['seconds']:6.0f} s  "
                  f"{builds[-1]['error']}", flush=True)
        rows.append({"family": family, "name": name, "source": source, "size": size, "builds": builds})
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"rows": rows, "notes": notes}, indent=1))
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(markdown(rows, machine, len(zoo), notes))  # after every row: an interrupted run still has its table
    results.write_text(json.dumps({"rows": rows, "notes": notes}, indent=1))
    args.md.write_text(markdown(rows, machine, len(zoo), notes))
    print(f"table: {args.md}")


if __name__ == "__main__":
    main()
