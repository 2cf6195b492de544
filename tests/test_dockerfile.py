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
    assert re.search(r"pip install [^&]*\.\[runtime,detect\]", runs)  # detect: GeoJSON/COCO on the device
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


def test_l4t_tag_and_tensorrt_line_go_together(steps):
    """The default L4T image ships the TensorRT line the image checks for, and every L4T tag the
    docs suggest is a JetPack 6 release whose line is written beside it."""
    from edgekit.targets import l4t_release, load_target

    args = dict(a.split("=", 1) for op, a in steps if op == "ARG" and "=" in a)
    release = l4t_release(args["L4T_TAG"])
    assert release["tensorrt"] == args["TENSORRT_LINE"]
    assert release["python"] == "3.10"  # the image installs edgekit (Python >= 3.10) next to JetPack's TensorRT
    assert {load_target(n).tensorrt for n in ("jetson-orin-nx", "jetson-agx-orin", "jetson-orin-nano")} == {release["tensorrt"]}
    docs = (ROOT / "docs" / "jetson.md").read_text() + (ROOT / "README.md").read_text()
    for tag in re.findall(r"L4T_TAG=(r[\d.]+)", docs):
        line = l4t_release(tag)["tensorrt"]
        assert f"TENSORRT_LINE={line}" in docs or line == args["TENSORRT_LINE"], tag


def test_jetpack5_target_hands_off_to_trtexec():
    """JetPack 5 ships Python 3.8: edgekit cannot run there, so its target says how the device finishes."""
    from edgekit.targets import l4t_release, load_target

    target = load_target("jetson-orin-nx-jp5")
    assert l4t_release("r35.4.1")["python"] == "3.8" and l4t_release("r35.4.1")["tensorrt"] == target.tensorrt
    assert target.handoff == "trtexec"
    step = target.next_step("out/jp5", "int8", "model.onnx")
    assert step.startswith("trtexec --onnx=out/jp5/model.onnx") and "--int8" in step
    assert load_target("jetson-orin-nx").next_step("out/nx", "int8", "model.onnx") == "edgekit compile out/nx"
