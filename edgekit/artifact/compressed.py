"""A compress output folder: the compressed module, its recipe-like description, the report.

Written by `edgekit compress`, read as a source by `edgekit build`: one owner of the format, in
the artifact layer both import.

    OUT/compress.yaml   a recipe (task, input, classes, preprocessing) whose ``model`` section
                        names the module file, its sha256, the original source and the plan
    OUT/model.pt        the whole compressed module (torch.save)
    OUT/report.json, report.md

Why a pickled module: a pruned/factorized network has per-layer widths and split layers that no
timm constructor rebuilds; replaying the pruning on the original would need the original weights,
Torch-Pruning and bit-identical importance ranking at build time. The module file is loaded with
``weights_only=False`` (a pickle) ONLY here and ONLY after its sha256 matches the one edgekit
wrote into compress.yaml, so a swapped or tampered file is refused before it is unpickled.
(A hand-edited compress.yaml with a new hash is as trusted as any Python file the user runs.)
"""
from __future__ import annotations

__all__ = ["DESCRIPTION", "MODULE_FILE", "is_compressed_output", "write_output", "load_compressed"]

from pathlib import Path

import yaml

from edgekit.cache import sha256_file
from edgekit.errors import SourceError

DESCRIPTION = "compress.yaml"
MODULE_FILE = "model.pt"


def is_compressed_output(path: str | Path) -> bool:
    """Whether ``path`` is a folder `edgekit compress` wrote."""
    return Path(path).is_dir() and (Path(path) / DESCRIPTION).is_file()


def write_output(folder: Path, model, recipe, source: str, plan: str, details: dict) -> Path:
    """Write the module and its description into ``folder`` (already an atomic temporary folder)."""
    import torch

    folder = Path(folder)
    torch.save(model, folder / MODULE_FILE)
    description = {
        "name": f"{recipe.name}_{plan}",
        "summary": f"{recipe.name} compressed by edgekit ({plan})",
        "task": recipe.task,
        "model": {"compressed": MODULE_FILE, "sha256": sha256_file(folder / MODULE_FILE), "source": source,
                  "base": dict(recipe.model), "plan": plan, **details},
        "input": {"size": list(recipe.input_size), "stride": recipe.stride, **recipe.preprocess.to_dict()},
        "classes": list(recipe.classes),
    }
    path = folder / DESCRIPTION
    path.write_text(yaml.safe_dump(description, sort_keys=False))
    return path


def load_compressed(description: Path):
    """The compressed module (eval mode) named by ``description``, after its sha256 check."""
    import torch

    description = Path(description)
    spec = yaml.safe_load(description.read_text())["model"]
    path = description.parent / spec["compressed"]
    if not path.is_file():
        raise SourceError(f"{description} names {path.name}, which is missing; compress again")
    if sha256_file(path) != spec.get("sha256"):
        raise SourceError(f"{path} does not match the sha256 in {description.name}: refused (tampered or replaced); "
                          "compress again")
    model = torch.load(path, map_location="cpu", weights_only=False)  # edgekit-written, hash checked above
    return model.eval()
