"""Model recipes: YAML files in models/ read into frozen dataclasses. No torch here."""
from __future__ import annotations

__all__ = ["Recipe", "RECIPE_DIR", "load_recipe", "list_recipes"]

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgekit.errors import ConfigError
from edgekit.preprocess import Preprocess

RECIPE_DIR = Path(__file__).resolve().parent.parent / "models"
TASKS = ("segmentation", "classification", "detection")


@dataclass(frozen=True)
class Recipe:
    """What to build: a network description, its input, and optionally trained weights."""

    name: str
    task: str
    model: dict
    input_size: tuple[int, int]
    stride: int = 32
    preprocess: Preprocess = field(default_factory=Preprocess)
    classes: tuple[str, ...] = ()
    checkpoint: Path | None = None
    summary: str = ""
    path: Path | None = None

    @property
    def trained(self) -> bool:
        return self.checkpoint is not None


def _read(path: Path) -> Recipe:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc}") from None
    if not isinstance(data, dict) or "model" not in data or "input" not in data:
        raise ConfigError(f"recipe {path} needs 'model' and 'input' sections")
    task = data.get("task", "segmentation")
    if task not in TASKS:
        raise ConfigError(f"recipe {path}: task {task!r} is not one of {', '.join(TASKS)}")
    inp = data["input"]
    size = inp.get("size", [224, 224])
    ckpt = data.get("checkpoint")
    return Recipe(
        name=str(data.get("name", path.stem)),
        task=task,
        model=dict(data["model"]),
        input_size=(int(size[0]), int(size[1])),
        stride=int(inp.get("stride", 32)),
        preprocess=Preprocess.from_dict(inp),
        classes=tuple(data.get("classes", ())),
        checkpoint=(path.parent / ckpt).resolve() if ckpt else None,
        summary=str(data.get("summary", "")),
        path=path.resolve(),
    )


def list_recipes(folder: Path = RECIPE_DIR) -> list[Recipe]:
    """Every recipe in ``folder``, sorted by name."""
    return sorted((_read(p) for p in folder.glob("*.yaml")), key=lambda r: r.name)


def load_recipe(name_or_path: str | Path, folder: Path = RECIPE_DIR) -> Recipe:
    """A recipe by file path or by name (``fastvit_sa12_fpn``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"recipe file {path} does not exist")
        return _read(path)
    candidate = folder / f"{name_or_path}.yaml"
    if candidate.is_file():
        return _read(candidate)
    names = [p.stem for p in folder.glob("*.yaml")]
    close = difflib.get_close_matches(str(name_or_path), names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f"unknown recipe {name_or_path!r}; {hint}known: {', '.join(sorted(names))}")
