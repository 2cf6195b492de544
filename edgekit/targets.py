"""Device profiles: YAML files in targets/ read into frozen dataclasses. No heavy imports."""
from __future__ import annotations

__all__ = ["Target", "TARGET_DIR", "load_target", "list_targets"]

import difflib
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from edgekit.errors import ConfigError

TARGET_DIR = Path(__file__).resolve().parent.parent / "targets"
KINDS = ("cpu", "jetson", "desktop")


@dataclass(frozen=True)
class Target:
    """A device edgekit builds for.

    Attributes:
        backend: ``onnxruntime`` (cpu) or ``tensorrt``.
        compute_capability: the GPU's, as "8.7"; None for cpu.
        tensorrt: the TensorRT line the device runs ("8.5", "10.3", "10"...).
        dla_cores: Deep Learning Accelerator cores (Jetson Orin NX / AGX: 2).
        workspace_mb: TensorRT builder workspace limit.
        tile / batch: default tile size and batch for `edgekit infer`.
        max_accuracy_drop: tolerated loss of the task metric, in points, for lower precision.
    """

    name: str
    kind: str
    backend: str
    summary: str = ""
    compute_capability: str | None = None
    memory_gb: float = 0.0
    dla_cores: int = 0
    jetpack: str | None = None
    tensorrt: str | None = None
    workspace_mb: int = 1024
    tile: int = 512
    batch: int = 1
    max_accuracy_drop: float = 0.5
    threads: int = 0

    @property
    def is_tensorrt(self) -> bool:
        return self.backend == "tensorrt"

    @property
    def trt_major(self) -> int | None:
        return int(self.tensorrt.split(".")[0]) if self.tensorrt else None


def _read(path: Path) -> Target:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read target {path}: {exc}") from None
    known = {f.name for f in fields(Target)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"target {path.name}: unknown keys {', '.join(unknown)}")
    data.setdefault("name", path.stem)
    for key in ("compute_capability", "tensorrt", "jetpack"):
        if data.get(key) is not None:
            data[key] = str(data[key])
    target = Target(**data)
    if target.kind not in KINDS or target.backend not in ("onnxruntime", "tensorrt"):
        raise ConfigError(f"target {path.name}: kind must be one of {KINDS}, backend onnxruntime|tensorrt")
    return target


def list_targets(folder: Path = TARGET_DIR) -> list[Target]:
    """Every target profile, sorted by name."""
    return sorted((_read(p) for p in folder.glob("*.yaml")), key=lambda t: t.name)


def load_target(name_or_path: str | Path, folder: Path = TARGET_DIR) -> Target:
    """A target by name (``jetson-orin-nx``) or YAML path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _read(path)
    candidate = folder / f"{name_or_path}.yaml"
    if candidate.is_file():
        return _read(candidate)
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    close = difflib.get_close_matches(str(name_or_path), names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f"unknown target {name_or_path!r}; {hint}choose one of: {', '.join(names)}")
