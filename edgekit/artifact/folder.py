"""An artifact folder (output of `edgekit build` or `edgekit compile`), verified.

Its runner is opened by the runtime layer above it: :func:`edgekit.runtime.open.open_runner`.
"""
from __future__ import annotations

__all__ = ["Artifact", "load_artifact"]

from dataclasses import dataclass
from pathlib import Path

from edgekit.artifact.compat import check_device, needs_of_engine
from edgekit.artifact.layout import compiled_files
from edgekit.artifact.manifest import Manifest, read_manifest, sha256_file
from edgekit.device import DeviceInfo, local_device
from edgekit.errors import ArtifactError


@dataclass(frozen=True)
class Artifact:
    """A verified artifact folder: its manifest and the files it lists."""

    folder: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.folder / self.manifest.model_file

    @property
    def engine_path(self) -> Path | None:
        return self.folder / self.manifest.engine_file if self.manifest.engine_file else None

    def loaded_mb(self, backend: str | None = None) -> float:
        """MiB of the files ``backend`` (default: the manifest's) loads: the compiled file (with an
        OpenVINO IR's weights) for the manifest's backend, else the deployable ONNX."""
        if self.engine_path is not None and (backend or self.manifest.backend) == self.manifest.backend:
            paths = [self.folder / f for f in compiled_files(self.manifest.engine_file)]
        else:
            paths = [self.model_path]
        return sum(p.stat().st_size for p in paths) / (1024 * 1024)

    def check_device(self, device: DeviceInfo | None = None, index: int = 0) -> list[str]:
        """Stop with a clear error when the compiled TensorRT engine cannot run on ``device`` (default:
        this machine's GPU ``index``, as ``--device`` counts); the notes of
        :func:`edgekit.artifact.compat.check_device` otherwise."""
        if self.manifest.backend != "tensorrt" or not self.manifest.engine_file:
            return []
        return check_device(needs_of_engine(self.manifest, self.folder), device or local_device(index))


def load_artifact(folder: Path | str, verify: bool = True) -> Artifact:
    """Read and check an artifact folder: manifest present and its settings as sealed, files present,
    checksums equal (``verify``: the files' checksums are computed; the settings are always checked)."""
    folder = Path(folder)
    manifest = read_manifest(folder, sealed=True)
    artifact = Artifact(folder, manifest)
    for rel, digest in manifest.files.items():
        path = folder / rel
        if not path.is_file():
            raise ArtifactError(f"{folder} is incomplete: {rel} is missing")
        if verify and sha256_file(path) != digest:
            raise ArtifactError(f"{folder}/{rel} does not match its checksum in the manifest (corrupt or modified)")
    if not artifact.model_path.is_file():
        raise ArtifactError(f"{folder} is incomplete: {manifest.model_file} is missing")
    return artifact
