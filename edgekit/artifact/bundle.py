"""Bundles: what the workstation hands to the device, one versioned ``.tar.gz`` with checksums.

A bundle holds an artifact folder without its compiled file (engines are built on the device):
the deployable ONNX, the manifest (preprocessing, inputs, precision, target), the build report and
recipe when present, and ``bundle.json``, which lists the sha256 of every file. Extraction checks
every member against it and refuses anything else: tampered, truncated or foreign archives.
"""
from __future__ import annotations

__all__ = ["BUNDLE_VERSION", "BundleIndex", "is_bundle", "package_artifact", "read_bundle_index", "extract_bundle",
           "open_bundle"]

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from edgekit import __version__
from edgekit.atomic import atomic_file
from edgekit.artifact.folder import Artifact, load_artifact
from edgekit.artifact.layout import BUNDLE_INDEX as INDEX_NAME, MANIFEST
from edgekit.artifact.manifest import seal
from edgekit.errors import ArtifactError

BUNDLE_VERSION = 1
ROOT = "artifact"
SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class BundleIndex:
    """``bundle.json``: what a bundle is for and the sha256 of every file in it.

    Attributes:
        target / precision / backend: copied from the manifest, readable without extracting.
        files: sha256 by path inside the bundle's ``artifact/`` folder, the manifest included.
    """

    target: str
    precision: str
    backend: str
    files: dict = field(default_factory=dict)
    edgekit_version: str = __version__
    bundle_version: int = BUNDLE_VERSION
    format: str = "edgekit-bundle"

    @classmethod
    def from_bytes(cls, data: bytes) -> "BundleIndex":
        try:
            raw = json.loads(data)
            index = cls(**{k: raw[k] for k in ("target", "precision", "backend", "files")},
                        edgekit_version=raw.get("edgekit_version", "?"), bundle_version=int(raw["bundle_version"]),
                        format=raw.get("format", ""))
        except (ValueError, KeyError, TypeError):
            raise ArtifactError(f"{INDEX_NAME} is not a valid edgekit bundle index") from None
        if index.format != "edgekit-bundle":
            raise ArtifactError("not an edgekit bundle (its index names another format)")
        if index.bundle_version > BUNDLE_VERSION:
            raise ArtifactError(
                f"bundle format {index.bundle_version} is newer than this edgekit understands ({BUNDLE_VERSION}); "
                "upgrade edgekit on the device"
            )
        return index


def is_bundle(path: Path | str) -> bool:
    """Whether ``path`` names a bundle file (by its suffix) rather than an artifact folder."""
    return str(path).endswith(SUFFIXES) and Path(path).is_file()


def _staged_copy(artifact: Artifact, staging: Path) -> None:
    """Copy the deployable files of ``artifact`` into ``staging`` and seal a device-neutral manifest."""
    m = artifact.manifest
    for rel in m.files:
        if rel == m.engine_file:
            continue  # compiled for the workstation's device: the device builds its own
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(artifact.folder / rel, staging / rel)
    session = {k: v for k, v in m.session.items() if k != "onnxruntime"}  # the ORT plan is not shipped
    seal(staging, m.evolve(engine_file=None, device={}, session=session))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def package_artifact(folder: Path | str, out_tar: Path | str) -> Path:
    """Write the bundle of a sealed artifact folder.

    Args:
        folder: an artifact folder (output of ``edgekit build``), checked against its checksums.
        out_tar: the bundle to write, ``*.tar.gz``; written atomically, byte-identical for equal inputs.

    Returns:
        The bundle's path.
    """
    out_tar = Path(out_tar)
    if not str(out_tar).endswith(SUFFIXES):
        raise ArtifactError(f"bundle name {out_tar.name!r} must end with .tar.gz")
    artifact = load_artifact(folder, verify=True)
    with tempfile.TemporaryDirectory(prefix="edgekit-bundle-") as tmp:
        staging = Path(tmp)
        _staged_copy(artifact, staging)
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        blobs = {rel: (staging / rel).read_bytes() for rel in files}
        m = artifact.manifest
        index = BundleIndex(m.target, m.precision, m.backend,
                            files={rel: hashlib.sha256(b).hexdigest() for rel, b in blobs.items()})
        out_tar.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(out_tar) as part, open(part, "wb") as raw:
            with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
                _add(tar, INDEX_NAME, json.dumps(asdict(index), indent=2).encode())
                for rel, data in blobs.items():
                    _add(tar, f"{ROOT}/{rel}", data)
    return out_tar


def _members(path: Path) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                data = tar.extractfile(info).read() if info.isfile() else None
                yield info, data
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArtifactError(f"{path.name} is truncated or not a .tar.gz bundle ({exc}); copy it again") from None


def read_bundle_index(path: Path | str) -> BundleIndex:
    """The index of a bundle, read without extracting the rest."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"bundle {path} does not exist")
    for info, data in _members(path):
        if info.name == INDEX_NAME and data is not None:
            return BundleIndex.from_bytes(data)
    raise ArtifactError(f"{path.name} has no {INDEX_NAME}: it is not an edgekit bundle (make one with `edgekit package`)")


def extract_bundle(path: Path | str, dest: Path | str) -> Artifact:
    """Extract a bundle's artifact into ``dest`` (created), checking every file against the index.

    Raises:
        ArtifactError: a member is missing, unexpected, not a plain file, or differs from its checksum.
    """
    path, dest = Path(path), Path(dest)
    index = read_bundle_index(path)
    seen: set[str] = set()
    for info, data in _members(path):
        if info.name == INDEX_NAME:
            continue
        rel = info.name[len(ROOT) + 1:] if info.name.startswith(f"{ROOT}/") else None
        if data is None or rel not in index.files:
            raise ArtifactError(f"{path.name} holds {info.name!r}, which its index does not list: refusing a tampered bundle")
        if hashlib.sha256(data).hexdigest() != index.files[rel]:
            raise ArtifactError(f"{path.name}: {rel} does not match its checksum (tampered or corrupt bundle); copy it again")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
        seen.add(rel)
    missing = sorted(set(index.files) - seen)
    if missing:
        raise ArtifactError(f"{path.name} is incomplete: {', '.join(missing)} missing (truncated bundle?); copy it again")
    if MANIFEST not in seen:
        raise ArtifactError(f"{path.name} has no {MANIFEST}")
    return load_artifact(dest, verify=True)


@contextmanager
def open_bundle(path: Path | str) -> Iterator[Artifact]:
    """Extract and verify a bundle into a temporary folder; yields the artifact, removes the folder after."""
    with tempfile.TemporaryDirectory(prefix="edgekit-unbundle-") as tmp:
        yield extract_bundle(path, Path(tmp) / "artifact")
