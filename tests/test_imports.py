"""The device path and `edgekit --help` never import torch, timm or ModelOpt, and the run-time path
never loads the build or measuring packages (checked in a subprocess)."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import edgekit

HEAVY = ("torch", "timm", "modelopt", "tensorrt", "onnxsim", "onnxslim")
DEVICE_PACKAGES = ("edgekit.runtime", "edgekit.tiling", "edgekit.profile", "edgekit.artifact", "edgekit.images",
                   "edgekit.evaluate", "edgekit.run")
DEVICE_MODULES = ("edgekit.cli.main", "edgekit.cli.infer", "edgekit.cli.run", "edgekit.cli.profile", "edgekit.cli.compare",
                  "edgekit.cli.compile", "edgekit.cli.package", "edgekit.cli.catalog",
                  "edgekit.targets", "edgekit.recipes", "edgekit.datapath", "edgekit.metrics")


# what infer, detect and run load must not pull in the workstation or measuring side
RUN_TIME = ("edgekit.detect.execute", "edgekit.tiling.execute", "edgekit.run.driver", "edgekit.cli.infer",
            "edgekit.cli.detect", "edgekit.cli.run")
ABOVE_RUN_TIME = ("edgekit.convert", "edgekit.profile", "edgekit.compile", "edgekit.compress", "edgekit.optimize",
                  "edgekit.sweep", "edgekit.evaluate")


def _edgekit_after(code: str) -> list[str]:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('edgekit'))))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _heavy_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _device_modules() -> list[str]:
    names = list(DEVICE_MODULES)
    for package in DEVICE_PACKAGES:
        module = __import__(package, fromlist=["_"])
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(module.__path__)]
    return [n for n in names if n != "edgekit.runtime.torch_runner"]


def test_device_path_modules_import_no_torch():
    names = _device_modules()
    assert "edgekit.tiling.execute" in names and "edgekit.profile.measure" in names
    assert _heavy_after("import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)) == []


@pytest.mark.parametrize("module", RUN_TIME)
def test_run_time_path_loads_no_build_or_measuring_module(module):
    """`python -c "import edgekit.detect.execute"` loads no convert/profile module (issue 22)."""
    loaded = _edgekit_after(f"import {module}")
    assert module in loaded and any(m.startswith("edgekit.tiling.") for m in loaded)  # the probe sees the loads
    assert [m for m in loaded if m.split(".")[:2] in [p.split(".") for p in ABOVE_RUN_TIME]] == []


def test_help_of_every_command_imports_no_torch():
    from edgekit.cli.main import COMMANDS

    code = ("from edgekit.cli.main import cli\nimport click\n"
            f"for name in {sorted(COMMANDS)!r}:\n"
            "    cli.get_command(click.Context(cli), name).get_help(click.Context(cli))\n")
    heavy = _heavy_after(code)
    # build/optimize/sweep may import torch when they *run*; their --help must not
    assert heavy == [], heavy


def test_every_module_imports():
    """Polygraphy's rule: each module imports on its own (heavy deps only inside functions)."""
    names = [m.name for m in pkgutil.walk_packages(edgekit.__path__, "edgekit.")]
    assert len(names) > 30
    code = "import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
