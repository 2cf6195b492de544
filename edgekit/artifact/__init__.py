"""The one owner of the artifact folder: its file names (:mod:`.layout`), the manifest and its seal
(:mod:`.manifest`), loading and verifying (:mod:`.folder`), bundles (:mod:`.bundle`), the compress
output folder (:mod:`.compressed`) and the one device-compatibility check (:mod:`.compat`).
Everything else asks this package. Imports no torch, and no runtime: runners are opened above it
(:func:`edgekit.runtime.open.open_runner`)."""
from edgekit.artifact import layout
from edgekit.artifact.manifest import FORMAT_VERSION, Manifest, TensorSpec, read_manifest, seal, sha256_file
from edgekit.artifact.folder import Artifact, load_artifact
from edgekit.artifact.compat import DeviceNeeds, check_device, needs_of_engine, needs_of_target
from edgekit.artifact.bundle import extract_bundle, is_bundle, open_bundle, package_artifact, read_bundle_index

__all__ = ["layout", "FORMAT_VERSION", "Manifest", "TensorSpec", "read_manifest", "seal", "sha256_file",
           "Artifact", "load_artifact", "DeviceNeeds", "check_device", "needs_of_engine", "needs_of_target",
           "extract_bundle", "is_bundle", "open_bundle", "package_artifact", "read_bundle_index"]
