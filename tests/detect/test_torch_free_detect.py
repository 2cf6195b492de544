"""Tiled detection runs on the device: its modules and `edgekit infer` never import torch."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "timm", "modelopt", "tensorrt")
MODULES = ["edgekit.runtime.decode", "edgekit.detect.merge", "edgekit.detect.execute", "edgekit.detect.outputs",
           "edgekit.cli.infer", "edgekit.cli.detect"]


def test_detection_path_does_not_import_torch():
    code = (
        "import importlib, json, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
