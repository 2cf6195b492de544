"""The manifest every artifact carries: what it is, how to feed it, and where it can run.

NumPy-free and torch-free: the device reads it before anything heavy is imported.
"""
from __future__ import annotations

__all__ = ["TensorSpec", "Manifest", "FORMAT_VERSION", "PRECISIONS", "read_manifest", "write_manifest", "seal", "sha256_file",
           "settings_seal"]

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from edgekit import __version__
from edgekit.artifact.layout import MANIFEST, is_sealed
from edgekit.cache import sha256_file
from edgekit.errors import ArtifactError
from edgekit.preprocess import Preprocess

FORMAT_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8", "bf16")  # what a deployable ONNX may be lowered to (bf16: the FP32 graph,
# computed in bfloat16 by OpenVINO's CPU plugin where the CPU has AVX-512 BF16 or AMX)
SEAL_TABLES = ("files", "sealed")  # the seal itself: every other entry of a manifest is a setting it seals


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. A dimension is an int, or a string for a dynamic axis."""

    name: str
    shape: tuple
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, data: dict) -> "TensorSpec":
        return cls(name=data["name"], shape=tuple(data["shape"]), dtype=data.get("dtype", "float32"))


@dataclass(frozen=True)
class Manifest:
    """Describes an artifact folder.

    Attributes:
        target: the target profile's name (``cpu``, ``jetson-orin-nx``...).
        backend: ``onnxruntime`` or ``tensorrt``.
        precision: ``fp32``, ``fp16`` or ``int8``.
        model_file: the deployable ONNX (precision decided in the graph), relative to the folder.
        engine_file: the compiled file the backend loads (TensorRT engine, or ORT-optimized ONNX);
            None until ``edgekit compile`` has run on the device.
        inputs / outputs: names, shapes and dtypes as the ONNX declares them.
        preprocess: normalisation the runner applies to raw pixels.
        task / classes: ``segmentation`` or ``classification``, and class names.
        tile: the model's input height and width; stride: the size divisor.
        source: where the model came from (kind, name, sha256 of the file when there is one).
        versions: library versions used to build (edgekit, onnx, onnxruntime, tensorrt, cuda...).
        device: for engines, the GPU they were built on (name, compute_capability).
        session: backend settings (ORT threads and optimisation level; TRT workspace, DLA).
        files: sha256 of every file of the artifact, by relative path.
        sealed: sha256 of each of the manifest's own entries (all but ``files`` and ``sealed``), by
            key: the seal of its settings, checked on loading (:func:`settings_seal`).
        output: how the stitched output comes out of the model, when the build measured it:
            ``stride`` (input height / output height; 4: logits at a quarter of the tile, which
            `infer` upsamples) and ``probabilities`` (True: already probabilities, no softmax).
        opset: the deployable ONNX's default-domain opset (for TensorRT targets, at most what the
            target's TensorRT line reads: edgekit.convert.opset).
    """

    target: str
    backend: str
    precision: str
    model_file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocess: Preprocess = field(default_factory=Preprocess)
    task: str = "segmentation"
    classes: tuple[str, ...] = ()
    tile: tuple[int, int] = (512, 512)
    stride: int = 32
    engine_file: str | None = None
    source: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    device: dict = field(default_factory=dict)
    session: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    opset: int | None = None
    sealed: dict = field(default_factory=dict)
    edgekit_version: str = __version__
    format_version: int = FORMAT_VERSION

    @property
    def batch(self) -> int | str:
        """The first input's batch dimension (an int, or a name when dynamic)."""
        return self.inputs[0].shape[0]

    @property
    def identity(self) -> str:
        """The artifact's identity: sha256 over its files' checksums and its settings (every entry but
        the seal's tables): what a result depends on."""
        return _digest([sorted(self.files.items()), _settings(self.to_dict())])

    def evolve(self, **changes) -> "Manifest":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Manifest":
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ArtifactError(
                f"manifest format {data['format_version']} is newer than this edgekit understands "
                f"({FORMAT_VERSION}); upgrade edgekit"
            )
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            kwargs["inputs"] = tuple(TensorSpec.from_dict(t) for t in data["inputs"])
            kwargs["outputs"] = tuple(TensorSpec.from_dict(t) for t in data["outputs"])
            kwargs["preprocess"] = Preprocess.from_dict(data.get("preprocess", {}))
            kwargs["classes"] = tuple(data.get("classes", ()))
            kwargs["tile"] = tuple(data.get("tile", (512, 512)))
            return cls(**kwargs)
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"manifest is incomplete: {exc}") from None


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _settings(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in SEAL_TABLES}


def settings_seal(data: dict) -> dict[str, str]:
    """sha256 of each of a manifest's own entries (its JSON object but the seal's tables), by key."""
    return {k: _digest(v) for k, v in sorted(_settings(data).items())}


def read_manifest(folder: Path, sealed: bool = False) -> Manifest:
    """The manifest of an artifact folder; a clear error when it is missing or corrupt.

    Args:
        sealed: also hold its settings to their seal, as loading an artifact does: an entry edited,
            added or removed after the seal is refused, and so is a manifest without a seal.
    """
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise ArtifactError(f"artifact folder {folder} does not exist")
    if not path.is_file():
        raise ArtifactError(f"{folder} has no {MANIFEST}: is it the output folder of `edgekit build`?")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc})") from None
    manifest = Manifest.from_dict(data)
    if sealed:
        _check_seal(path, data)
    return manifest


def _check_seal(path: Path, data: dict) -> None:
    recorded = data.get("sealed")
    if not isinstance(recorded, dict) or not recorded:
        raise ArtifactError(f"{path} has no seal of its settings (an artifact of an older edgekit); "
                            "rebuild it with `edgekit build`")
    now = settings_seal(data)
    changed = sorted(k for k in recorded.keys() | now.keys() if recorded.get(k) != now.get(k))
    if changed:
        raise ArtifactError(f"{path} was edited after the build (settings that no longer match the seal: "
                            f"{', '.join(changed)}); rebuild the artifact with `edgekit build`")


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (temporary file, then rename)."""
    folder = Path(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".manifest.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(manifest.to_dict(), f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / MANIFEST)
    return folder / MANIFEST


def seal(folder: Path, manifest: Manifest) -> Manifest:
    """Record the sha256 of every file in ``folder`` (but the manifest) and of each of the
    manifest's own settings (:func:`settings_seal`), and write the manifest.

    The last step of writing an artifact folder, once: every file is in place before it.
    """
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and is_sealed(p.relative_to(folder))
    }
    with_files = manifest.evolve(files=files)
    sealed = with_files.evolve(sealed=settings_seal(json.loads(json.dumps(with_files.to_dict()))))
    write_manifest(folder, sealed)
    return sealed
