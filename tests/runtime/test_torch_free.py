"""The device path never imports torch: every runtime module and the compile/package commands."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import edgekit.runtime

HEAVY = ("torch", "timm", "modelopt", "tensorrt")


def test_runtime_and_device_commands_do_not_import_torch():
    modules = [f"edgekit.runtime.{m.name}" for m in pkgutil.iter_modules(edgekit.runtime.__path__)]
    modules += ["edgekit.cli.compile", "edgekit.cli.package", "edgekit.artifact", "edgekit.artifact.bundle", "edgekit.compile.stage",
                "edgekit.compile.engine"]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "edgekit.runtime.trt" in modules
    assert json.loads(out.strip().splitlines()[-1]) == []
