"""The device path in a fresh virtual environment with only `edgekit[runtime]`, installed from a built
wheel (not editable): no torch anywhere, and the package data (targets, recipes) found in the wheel.

Slow (it builds the wheel and installs the run-time dependencies with pip, from its cache or the
package index). The workstation side (packaging) runs here; the device side runs in the new
environment, from a folder outside the repository so that nothing resolves to the source tree.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.artifact.bundle import package_artifact
from tests.conftest import make_cpu_artifact

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args: list, env: dict, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, timeout=1200, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, args))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def device(tmp_path_factory) -> dict:
    """A fresh venv with edgekit[runtime], and a bundle of the tiny artifact made on the 'workstation'."""
    tmp = tmp_path_factory.mktemp("device")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", tmp / "venv"], env)
    py = tmp / "venv" / "bin" / "python"
    pip = [py, "-m", "pip", "--disable-pip-version-check"]
    source = tmp / "source"  # a clean copy: an in-tree build/ could carry modules deleted since
    shutil.copytree(ROOT / "edgekit", source / "edgekit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    _run([*pip, "wheel", "-q", "--no-deps", "-w", tmp / "dist", source], env, cwd=tmp)
    wheel = next((tmp / "dist").glob("edgekit-*.whl"))
    _run([*pip, "install", "-q", f"{wheel}[runtime]"], env, cwd=tmp)
    env["PATH"] = f"{tmp / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    bundle = package_artifact(make_cpu_artifact(tmp / "workstation", size=32), tmp / "tiny-cpu.tar.gz")
    return {"py": py, "env": env, "bundle": bundle, "tmp": tmp, "wheel": wheel}


def test_the_wheel_is_installed_not_linked(device):
    where = _run([device["py"], "-c", "import edgekit; print(edgekit.__file__)"], device["env"], cwd=device["tmp"])
    assert str(device["tmp"] / "venv") in where.stdout and str(ROOT) not in where.stdout
    import zipfile

    names = zipfile.ZipFile(device["wheel"]).namelist()
    assert "edgekit/data/targets/cpu.yaml" in names and "edgekit/data/models/fastvit_sa12_fpn.yaml" in names
    assert "edgekit/data/models/weights/fastvit_sa12_fpn_bluemarble.safetensors" in names


def test_targets_and_models_come_from_the_package(device):
    targets = _run(["edgekit", "targets"], device["env"], cwd=device["tmp"]).stdout
    assert all(name in targets for name in ("cpu", "jetson-orin-nx", "rtx-4090")) and "package" in targets
    models = _run(["edgekit", "models"], device["env"], cwd=device["tmp"]).stdout
    assert "fastvit_sa12_fpn" in models and "trained" in models  # its weights are in the wheel
    own = device["tmp"] / "team" / "targets"
    own.mkdir(parents=True)
    (own / "edge-box.yaml").write_text("name: edge-box\nkind: cpu\nbackend: onnxruntime\nsummary: our box\n")
    env = {**device["env"], "EDGEKIT_PATH": str(device["tmp"] / "team")}
    listed = _run(["edgekit", "targets"], env, cwd=device["tmp"]).stdout
    assert "edge-box" in listed and "EDGEKIT_PATH" in listed


def test_torch_is_absent(device):
    out = subprocess.run([device["py"], "-c", "import torch"], capture_output=True, text=True, env=device["env"],
                         cwd=device["tmp"])
    assert out.returncode != 0 and "No module named 'torch'" in out.stderr
    listed = _run([device["py"], "-m", "pip", "list", "--format=json"], device["env"], cwd=device["tmp"]).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert not names & {"torch", "timm", "nvidia-modelopt", "torchvision"}
    assert names & {"onnxruntime", "onnxruntime-gpu"} and "edgekit" in names


def test_compile_then_run_without_torch(device):
    out_dir = device["tmp"] / "models" / "tiny"
    _run(["edgekit", "compile", device["bundle"], "-o", out_dir], device["env"], cwd=device["tmp"])
    code = (
        "import json, sys, numpy as np\n"
        "from edgekit.artifact.folder import load_artifact\n"
        "from edgekit.runtime.open import open_runner\n"
        f"a = load_artifact({str(out_dir)!r})\n"
        "x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)\n"
        "with open_runner(a) as r: y = r.infer({'input': x})['logits']\n"
        "print(json.dumps({'engine': a.manifest.engine_file, 'sum': float(y.sum()), "
        "'heavy': [m for m in ('torch', 'timm', 'modelopt') if m in sys.modules]}))\n"
    )
    got = json.loads(_run([device["py"], "-c", code], device["env"], cwd=device["tmp"]).stdout.strip().splitlines()[-1])
    assert got["engine"] == "model.ort.onnx" and got["heavy"] == []
    from edgekit.artifact.folder import load_artifact
    from edgekit.runtime.open import open_runner

    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with open_runner(load_artifact(device["tmp"] / "workstation")) as r:  # the same model, run here
        assert got["sum"] == pytest.approx(float(r.infer({"input": x})["logits"].sum()), rel=1e-4, abs=1e-3)


def test_profile_without_torch(device):
    out_dir = device["tmp"] / "models" / "prof"
    _run(["edgekit", "compile", device["bundle"], "-o", out_dir], device["env"], cwd=device["tmp"])
    report = device["tmp"] / "prof.json"
    _run(["edgekit", "profile", out_dir, "--json", report, "--warmup", "0.1", "--duration", "0.3", "--no-power"],
         device["env"], cwd=device["tmp"])
    got = json.loads(report.read_text())
    assert (got["backend"], got["precision"], got["input_hw"]) == ("onnxruntime", "fp32", [32, 32])
    timed = got["batches"][0]
    assert timed["batch"] == 1 and timed["end_to_end"]["count"] >= 1
    assert 0 < timed["end_to_end"]["p50"] <= timed["end_to_end"]["max"] and timed["images_per_s"] > 0


def test_infer_without_torch(device):
    import tifffile

    out_dir = device["tmp"] / "models" / "inf"
    _run(["edgekit", "compile", device["bundle"], "-o", out_dir], device["env"], cwd=device["tmp"])
    scene = device["tmp"] / "scene.tif"
    tifffile.imwrite(scene, np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8))
    mask = device["tmp"] / "mask.tif"
    _run(["edgekit", "infer", out_dir, scene, "-o", mask, "--overlap", "8", "--no-progress"], device["env"], cwd=device["tmp"])
    from edgekit.cli.main import main

    here = device["tmp"] / "mask-here.tif"  # the same model, inferred by this environment's edgekit
    assert main(["infer", str(device["tmp"] / "workstation"), str(scene), "-o", str(here), "--overlap", "8",
                 "--no-progress"]) == 0
    got, want = tifffile.imread(mask), tifffile.imread(here)
    assert got.shape == want.shape and got.shape[:2] == (80, 96)
    assert np.mean(got == want) >= 0.99  # the device's compiled plan labels the scene as the ONNX does here
