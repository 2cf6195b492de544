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


def _edit(folder, **changes) -> None:
    path = folder / layout.MANIFEST
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **changes}, indent=2))


@pytest.mark.parametrize("changes, named", [
    ({"preprocess": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "channel_order": "RGB", "scale": 255.0}},
     "preprocess"),
    ({"tile": [32, 32]}, "tile"),
    ({"stride": 8, "classes": ["x", "y", "z"]}, "classes, stride"),
])
def test_settings_edited_after_the_seal_are_refused_in_one_line(cpu_artifact, changes, named):
    load_artifact(cpu_artifact)
    _edit(cpu_artifact, **changes)
    with pytest.raises(ArtifactError) as info:
        load_artifact(cpu_artifact)
    message = str(info.value)
    assert "\n" not in message and "manifest.json was edited after the build" in message
    assert f"(settings that no longer match the seal: {named})" in message and "rebuild" in message


def test_a_manifest_without_the_seal_of_its_settings_asks_for_a_rebuild(cpu_artifact):
    data = json.loads((cpu_artifact / layout.MANIFEST).read_text())
    data = {k: v for k, v in data.items() if k not in ("sealed", "files")} | {"files": data["files"]}
    (cpu_artifact / layout.MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="rebuild") as info:
        load_artifact(cpu_artifact)
    assert "\n" not in str(info.value)


def test_a_reseal_after_a_change_is_accepted(cpu_artifact):
    from tests.conftest import declare_units

    declare_units(cpu_artifact, 4095.0)  # the one way to change settings: a writer that seals again
    assert load_artifact(cpu_artifact).manifest.preprocess.scale == 4095.0


def test_the_identity_covers_the_settings_and_the_files(cpu_artifact):
    """What `run` resumes by: the same files with other settings are another artifact."""
    from dataclasses import replace

    m = read_manifest(cpu_artifact)
    assert m.identity == read_manifest(cpu_artifact).identity == load_artifact(cpu_artifact).manifest.identity
    assert replace(m, tile=(32, 32)).identity != m.identity
    assert replace(m, preprocess=m.preprocess.with_units(4095.0)).identity != m.identity
    assert replace(m, files={**m.files, layout.MODEL: "0" * 64}).identity != m.identity
    assert replace(m, sealed={}).identity == m.identity  # the seal records the settings; it is not one


def test_infer_refuses_an_edited_manifest_exit_2(cpu_artifact, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from edgekit.cli.main import main

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    preprocess = json.loads((cpu_artifact / layout.MANIFEST).read_text())["preprocess"]
    _edit(cpu_artifact, preprocess={**preprocess, "mean": [0.1, 0.2, 0.3]})  # every output changes, silently
    assert main(["infer", str(cpu_artifact), str(tmp_path / "a.png"), "-o", str(tmp_path / "mask.png"),
                 "--overlap", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest.json was edited after the build" in err
    assert not (tmp_path / "mask.png").exists()
