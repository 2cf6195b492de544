"""Dockerfile.jetson cannot be built here (no Docker engine, no Jetson): check what it says instead."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile.jetson"
HEAVY = ("torch", "torchvision", "timm", "modelopt", "nvidia-modelopt", "onnxsim", "pycuda")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def test_from_l4t_jetpack_6_selected_by_an_arg(steps):
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) == 1 and froms[0] == "nvcr.io/nvidia/l4t-jetpack:${L4T_TAG}"
    before = steps[: [op for op, _ in steps].index("FROM")]
    defaults = dict(args.split("=", 1) for op, args in before if op == "ARG" and "=" in args)
    assert re.fullmatch(r"r36\.\d+\.\d+", defaults["L4T_TAG"])  # JetPack 6 = L4T r36, pinned


def test_installs_the_runtime_extra_only(steps):
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert re.search(r"pip install [^&]*\.\[runtime\]", runs)
    assert not re.search(r"pip install[^&]*\s(-e|--editable)\s", runs)  # a normal install: package data inside
    assert "edgekit targets" in runs  # the build fails if the profiles did not come with the package
    for name in HEAVY:
        assert not re.search(rf"pip install[^&]*\b{re.escape(name)}\b", runs), name
    assert "import torch" in runs  # the build itself fails if torch came in through a dependency


def test_versions_are_pinned(steps):
    args = dict(a.split("=", 1) for op, a in steps if op == "ARG" and "=" in a)
    assert all(v and v != "latest" for v in args.values())
    constraints = (ROOT / "docker" / "jetson-constraints.txt").read_text().splitlines()
    pins = [line for line in constraints if line.strip() and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", p) for p in pins)
    assert not {p.split("==")[0].lower() for p in pins} & set(HEAVY)
    assert any("--constraint docker/jetson-constraints.txt" in a for op, a in steps if op == "RUN")


def test_entrypoint_is_edgekit(steps):
    entry = [args for op, args in steps if op == "ENTRYPOINT"]
    assert len(entry) == 1 and json.loads(entry[0])[0] == "edgekit"


def test_copied_paths_exist_and_pass_the_ignore_file(steps):
    ignore = (ROOT / "Dockerfile.jetson.dockerignore").read_text().splitlines()
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    for op, args in steps:
        if op == "COPY":
            *sources, _dest = args.split()
            for src in sources:
                assert (ROOT / src).exists(), src
                assert src in allowed or any(src.startswith(a.rstrip("/") + "/") for a in allowed), src


def test_short():
    assert len(DOCKERFILE.read_text().splitlines()) <= 40
