"""Imports run one way: the layer order of edgekit's packages, written once, and the tests that hold it.

A module may import modules of its own layer and of the layers below it, never one above, at the
top of the file or inside a function alike (a lazy import is still a dependency: it only moves the
failure to run time); a module named in a string (``importlib.import_module``, package data read
through ``importlib.resources.files``) counts as imported. Modules never import each other in a
cycle, even through a function. A helper two upper packages both need moves down, never sideways or
up. There are no exceptions to the order.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import edgekit

ROOT = Path(edgekit.__file__).parent

# Low to high. Each entry is a package (every module under it) or a single module.
LAYERS: tuple[tuple[str, ...], ...] = (
    # base: import no other edgekit package; among themselves, no cycles
    ("edgekit", "edgekit.errors", "edgekit.atomic", "edgekit.memory", "edgekit.metrics", "edgekit.timing",
     "edgekit.machine", "edgekit.device", "edgekit.cache", "edgekit.datapath", "edgekit.preprocess", "edgekit.targets",
     "edgekit.recipes",
     "edgekit.scoring",     # the one scorer (labels and COCO mAP): build verification and the searches use it
     "edgekit.data"),       # the package of data files (targets, recipes, weights) datapath and targets read
    ("edgekit.images",),    # reading pixels and masks, tile geometry, image sets and held-out sets
    ("edgekit.artifact",),  # the artifact folder: manifest, layout, seal, bundles, device needs
    ("edgekit.data.bluemarble", "edgekit.data.neon_trees"),  # the demo data sets, read through images
    ("edgekit.nets",),      # torch model definitions and checkpoint loading (the torch runner builds them)
    ("edgekit.runtime",),   # runners, opening the right one for an artifact, detector output decoders
    ("edgekit.compile",),   # deployable graph -> engine or runtime choice (build chains it, so below convert)
    ("edgekit.convert",),   # build: sources, export, simplify, precision, report
    # on top (STYLE.md 17): what runs, measures and searches over built artifacts
    ("edgekit.tiling",),    # tile plan execution, merging, writers
    ("edgekit.detect",),    # box merging and detection outputs over the tile loop
    ("edgekit.evaluate",),  # the held-out set in memory for the searches
    ("edgekit.run",),       # scenes and jobs over tiling and detect
    ("edgekit.compress",),  # pruning and distillation, writing a source build reads
    ("edgekit.profile",),   # measuring and comparing built artifacts (reads engines compile made)
    ("edgekit.optimize",),  # search over builds, compressions and profiles
    ("edgekit.sweep",),
    ("edgekit.cli",),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The module ``name`` lives in: ``edgekit.a.b.Thing`` -> ``edgekit.a.b``."""
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports_in(source: str, where: str = "<source>") -> list[tuple[str, int]]:
    """(edgekit module, line) for every import statement in ``source``, at any depth, and every
    string that names an edgekit module or package (``import_module("edgekit.x")``, ``files("edgekit.data")``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{where}:{node.lineno} uses a relative import; write edgekit.<...>")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "edgekit":
            found += [(_resolve(f"{node.module}.{a.name}"), node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(_resolve(a.name), node.lineno) for a in node.names if a.name.split(".")[0] == "edgekit"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value \
                and node.value in MODULES:
            found.append((node.value, node.lineno))
    return sorted(set(found))


def imports_of(module: str) -> list[tuple[str, int]]:
    return imports_in(MODULES[module].read_text(), module)


def upward_imports(module: str, imports: list[tuple[str, int]]) -> list[str]:
    """``module:line -> target`` for each of ``imports`` into a higher layer than ``module``'s."""
    return [f"{module}:{line} -> {target}" for target, line in imports if layer_of(target) > layer_of(module)]


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest entry ``module`` is or lies under; -1 when none."""
    best, length = -1, -1
    for i, entries in enumerate(LAYERS):
        for entry in entries:
            if (module == entry or module.startswith(entry + ".")) and len(entry) > length and (
                    entry != "edgekit" or module == "edgekit"):
                best, length = i, len(entry)
    return best


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on:
                low[node] = min(low[node], index[child])
    return out


def test_every_module_has_a_layer():
    unplaced = [m for m in MODULES if layer_of(m) < 0]
    assert unplaced == [], f"add these to LAYERS in tests/test_layering.py: {unplaced}"


def test_no_module_imports_a_higher_layer():
    upward = [line for module in MODULES for line in upward_imports(module, imports_of(module))]
    assert upward == [], "imports that run up the layers (move the helper down):\n" + "\n".join(upward)


def test_no_module_cycles():
    edges = defaultdict(set)
    for module in MODULES:
        edges[module] |= {t for t, _ in imports_of(module) if t != module and t in MODULES}
    assert _cycles(edges) == [], "modules that import each other (through any function)"


def test_the_checks_catch_what_they_guard_against():
    """The order's own known answers: an upward pair is upward, and a planted cycle is found."""
    assert layer_of("edgekit.cli.main") == len(LAYERS) - 1 and layer_of("edgekit.errors") == 0
    assert layer_of("edgekit.images.readers") < layer_of("edgekit.convert.precision") < layer_of("edgekit.tiling.execute")
    assert layer_of("edgekit.nonexistent") == -1 and layer_of("edgekit.errorsx") == -1
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert layer_of("edgekit.data") == 0 < layer_of("edgekit.images") < layer_of("edgekit.data.bluemarble")


def test_a_lazy_or_string_import_upward_is_caught():
    """An import inside a function, or a module named in a string, is an edge like any other."""
    source = ("from edgekit.errors import ConfigError\n"
              "def later():\n"
              "    from edgekit.convert.precision import PrecisionSpec\n"
              "    import edgekit.profile.measure\n"
              "def by_name():\n"
              "    return importlib.import_module('edgekit.optimize')\n")
    found = imports_in(source)
    assert found == [("edgekit.convert.precision", 3), ("edgekit.errors", 1), ("edgekit.optimize", 6),
                     ("edgekit.profile.measure", 4)]
    assert upward_imports("edgekit.compile.stage", found) == [
        "edgekit.compile.stage:3 -> edgekit.convert.precision", "edgekit.compile.stage:6 -> edgekit.optimize",
        "edgekit.compile.stage:4 -> edgekit.profile.measure"]
    assert upward_imports("edgekit.cli.main", found) == []


@pytest.mark.parametrize("layer", range(len(LAYERS) - 1), ids=lambda i: LAYERS[i][-1].rpartition(".")[2])
def test_importing_a_layer_loads_nothing_above_it(layer):
    """What the interpreter does: importing every module of a layer (package __init__ files
    included) leaves no module of a higher layer in sys.modules."""
    names = [m for m in MODULES if layer_of(m) == layer]
    code = ("import importlib, json, sys\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)
            + "print(json.dumps(sorted(m for m in sys.modules if m.startswith('edgekit'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert [m for m in loaded if layer_of(m) > layer] == []
