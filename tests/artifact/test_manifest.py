"""The manifest: round trip, the seal (written once, checked on loading), older and newer formats."""
from __future__ import annotations

import json

import pytest

from edgekit.artifact import layout
from edgekit.artifact.folder import load_artifact
from edgekit.artifact.manifest import FORMAT_VERSION, Manifest, TensorSpec, read_manifest, seal
from edgekit.errors import ArtifactError


def _manifest() -> Manifest:
    return Manifest(target="cpu", backend="onnxruntime", precision="int8", model_file=layout.MODEL,
                    inputs=(TensorSpec("input", (1, 3, 8, 8)),), outputs=(TensorSpec("logits", ("batch", 2, 8, 8)),),
                    classes=("a", "b"), tile=(8, 8))


def test_round_trip_seal_and_tamper(tmp_path):
    (tmp_path / layout.MODEL).write_bytes(b"onnx bytes")
    (tmp_path / ".manifest.tmp").write_bytes(b"half-written")  # hidden files are not sealed
    sealed = seal(tmp_path, _manifest())
    again = read_manifest(tmp_path)
    assert again == sealed and again.outputs[0].shape[0] == "batch"
    assert set(sealed.files) == {layout.MODEL}
    assert load_artifact(tmp_path).model_path == tmp_path / layout.MODEL
    (tmp_path / layout.MODEL).write_bytes(b"onnx bytez")
    with pytest.raises(ArtifactError, match="checksum"):
        load_artifact(tmp_path)


def test_a_newer_format_is_refused(tmp_path):
    (tmp_path / layout.MODEL).write_bytes(b"x")
    seal(tmp_path, _manifest())
    data = json.loads((tmp_path / layout.MANIFEST).read_text())
    data["format_version"] = FORMAT_VERSION + 1
    (tmp_path / layout.MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="newer"):
        read_manifest(tmp_path)


def test_an_older_manifest_still_reads(tmp_path):
    """A manifest as the first releases wrote it: no format_version, no session/device, an unknown key."""
    old = {"target": "cpu", "backend": "onnxruntime", "precision": "fp32", "model_file": "model.onnx",
           "inputs": [{"name": "input", "shape": [1, 3, 16, 16]}], "outputs": [{"name": "logits", "shape": [1, 2, 16, 16]}],
           "preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}, "tile": [16, 16],
           "files": {}, "retired_field": 1}
    (tmp_path / layout.MANIFEST).write_text(json.dumps(old))
    m = read_manifest(tmp_path)
    assert (m.format_version, m.tile, m.inputs[0].dtype, m.session) == (FORMAT_VERSION, (16, 16), "float32", {})
    assert m.preprocess.mean == (0.5, 0.5, 0.5)


def test_missing_or_broken_manifest_is_one_line(tmp_path):
    with pytest.raises(ArtifactError, match="has no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / layout.MANIFEST).write_text("{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_manifest(tmp_path)
