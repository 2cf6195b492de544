"""Device profiles: YAML files (shipped in edgekit/data/targets, or on the user's search path, see
edgekit.datapath) read into frozen dataclasses. No heavy imports."""
from __future__ import annotations

__all__ = ["CPU_RUNTIMES", "Target", "load_target", "list_targets", "tensorrt_line", "l4t_release"]

import difflib
import functools
from dataclasses import dataclass, fields, replace
from importlib.resources import files
from pathlib import Path

import yaml

from edgekit import datapath
from edgekit.errors import ConfigError

KINDS = ("cpu", "jetson", "desktop")
BACKENDS = ("onnxruntime", "openvino", "tensorrt")
CPU_RUNTIMES = ("onnxruntime", "openvino")  # what a cpu target's artifact may run on (``--runtime``)
HANDOFFS = ("edgekit", "trtexec")


@dataclass(frozen=True)
class Target:
    """A device edgekit builds for.

    Attributes:
        backend: ``onnxruntime`` or ``openvino`` (cpu), or ``tensorrt``: the runtime the stages before
            compile time and verify graphs on, and the one kept when ``runtimes`` tie.
        runtimes: cpu runtimes the compile stage measures here, keeping the faster artifact
            (``backend`` first); empty: ``backend`` only (:mod:`edgekit.compile.choice`).
        compute_capability: the GPU's, as "8.7"; None for cpu.
        tensorrt: the TensorRT line the device runs ("8.5", "10.3", "10"...).
        dla_cores: Deep Learning Accelerator cores (Jetson Orin NX / AGX: 2).
        workspace_mb: TensorRT builder workspace limit.
        tile / batch: default tile size and batch for `edgekit infer`.
        max_accuracy_drop: tolerated loss of the task metric, in points, for lower precision.
        handoff: how the device finishes a build: ``edgekit`` (``edgekit compile`` in the container of
            docs/jetson.md), or ``trtexec`` where edgekit cannot run on the device (JetPack 5 ships
            Python 3.8, edgekit needs 3.10): JetPack's own ``trtexec`` builds the engine from the
            deployable ONNX, and edgekit's run-time commands are not available there.
        path / origin: the YAML file read, and where it was found (``package``, ``EDGEKIT_PATH``,
            ``--targets-dir``, ``file``); not keys of the file.
        pinned: what pinned the runtime (``--runtime``, ``bf16``: :meth:`with_runtime`); "" when
            nothing did. Not a key of the file.
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
    handoff: str = "edgekit"
    runtimes: tuple[str, ...] = ()
    path: Path | None = None
    origin: str = ""
    pinned: str = ""

    @property
    def is_tensorrt(self) -> bool:
        return self.backend == "tensorrt"

    @property
    def cpu_runtime(self) -> str:
        """The runtime a build times and verifies graphs on here: the cpu target's own backend
        (``openvino`` or ``onnxruntime``); ONNX Runtime's CPU provider for the device targets."""
        return "openvino" if self.backend == "openvino" else "onnxruntime"

    @property
    def choices(self) -> tuple[str, ...]:
        """The runtimes the compile stage may keep, ``backend`` first."""
        return (self.backend, *(r for r in self.runtimes if r != self.backend))

    def with_runtime(self, runtime: str, why: str = "--runtime") -> "Target":
        """This cpu target pinned to one runtime (by ``why``: ``--runtime``, or a precision only it
        runs): every stage times, verifies and compiles on it, and nothing is chosen by measurement."""
        if self.kind != "cpu":
            raise ConfigError(f"--runtime is for cpu targets; {self.name} runs a TensorRT engine: drop --runtime")
        if runtime not in CPU_RUNTIMES:
            raise ConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(CPU_RUNTIMES)}")
        return replace(self, backend=runtime, runtimes=(), pinned=why)

    @property
    def trt_major(self) -> int | None:
        return int(self.tensorrt.split(".")[0]) if self.tensorrt else None

    def next_step(self, folder: Path | str, precision: str, model_file: str, dla_core: int | None = None) -> str:
        """The command that finishes a build of this target on the device (``model_file``: the
        artifact's deployable ONNX; ``dla_core``: the DLA core asked for, which `edgekit compile`
        reads from the manifest)."""
        if self.handoff == "trtexec":
            flags = {"fp32": "", "fp16": " --fp16", "int8": " --int8 --fp16"}[precision]
            flags += f" --useDLACore={dla_core} --allowGPUFallback" if dla_core is not None else ""
            return f"trtexec --onnx={Path(folder) / model_file} --saveEngine={Path(folder) / 'model.engine'}{flags}"
        return f"edgekit compile {folder}"

    @property
    def max_opset(self) -> int | None:
        """The highest ONNX opset this target's graphs may carry: its TensorRT line's parser's
        (``edgekit/data/tensorrt_lines.yaml``); None for cpu targets (their runtime reads the export's)."""
        return tensorrt_line(self.tensorrt)["max_opset"] if self.is_tensorrt and self.tensorrt else None


@functools.cache
def _table() -> dict:
    return yaml.safe_load((files("edgekit.data") / "tensorrt_lines.yaml").read_text())


def _lines() -> dict:
    return _table()["lines"]


def l4t_release(tag: str) -> dict:
    """What an L4T release (``r36.4.0``, a ``nvcr.io/nvidia/l4t-jetpack`` tag) ships: its JetPack, TensorRT
    line and Python (``edgekit/data/tensorrt_lines.yaml``)."""
    parts = str(tag).lstrip("Rr").split(".")
    key = "r" + ".".join(parts[:2])
    known = _table()["l4t"]
    if key not in known:
        raise ConfigError(f"L4T {tag} is not a release edgekit knows ({', '.join(known)})")
    return {"release": key, **known[key]}


def tensorrt_line(version: str) -> dict:
    """What the TensorRT line or version ``version`` ("8.5", "10.3", "10.7.0") reads: the entry of the
    longest listed line that prefixes it, part by part ("10.15" is not "10.1"); its ``line`` added."""
    parts = str(version).split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in _lines():
            return {"line": key, **_lines()[key]}
    raise ConfigError(f"TensorRT {version} is not a line edgekit knows ({', '.join(_lines())}); "
                      "set the target's `tensorrt:` to one of them")


_NOT_KEYS = ("path", "origin", "pinned")


def _read(path: Path, origin: str = "file") -> Target:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read target {path}: {exc}") from None
    known = {f.name for f in fields(Target)} - set(_NOT_KEYS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"target {path.name}: unknown keys {', '.join(unknown)}")
    data.setdefault("name", path.stem)
    for key in ("compute_capability", "tensorrt", "jetpack"):
        if data.get(key) is not None:
            data[key] = str(data[key])
    data["runtimes"] = tuple(data.get("runtimes") or ())
    target = Target(**data, path=path, origin=origin)
    if target.kind not in KINDS or target.backend not in BACKENDS:
        raise ConfigError(f"target {path.name}: kind must be one of {', '.join(KINDS)}, backend one of {', '.join(BACKENDS)}")
    if target.runtimes and (target.kind != "cpu" or not set(target.choices) <= set(CPU_RUNTIMES)):
        raise ConfigError(f"target {path.name}: runtimes are for cpu targets, among {', '.join(CPU_RUNTIMES)}")
    if target.handoff not in HANDOFFS:
        raise ConfigError(f"target {path.name}: handoff must be one of {', '.join(HANDOFFS)}")
    if (target.kind == "cpu") == target.is_tensorrt:
        raise ConfigError(f"target {path.name}: a {target.kind} target cannot use {target.backend}")
    return target


def list_targets(folder: Path | str | None = None) -> list[Target]:
    """Every target profile on the search path (``folder`` first, then EDGEKIT_PATH, then the package's),
    sorted by name; each says where it came from."""
    return [_read(path, origin) for _name, path, origin in datapath.entries("targets", folder)]


def load_target(name_or_path: str | Path, folder: Path | str | None = None) -> Target:
    """A target by name (``jetson-orin-nx``) or YAML path; ``folder`` is searched before the others."""
    path = Path(name_or_path)
    if path.suffix in datapath.SUFFIXES and path.is_file():
        return _read(path)
    found = datapath.find("targets", str(name_or_path), folder)
    if found is not None:
        return _read(*found)
    names = [name for name, _path, _origin in datapath.entries("targets", folder)]
    close = difflib.get_close_matches(str(name_or_path), names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f"unknown target {name_or_path!r}; {hint}choose one of: {', '.join(names) or '(none)'} "
                      f"(looked in {datapath.looked_in('targets', folder)}; add yours with --targets-dir or {datapath.ENV})")
