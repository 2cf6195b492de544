"""Bundles: round trip, determinism, and refusal of tampered, truncated or foreign archives."""
from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.compile.stage import compile_artifact
from edgekit.artifact.bundle import extract_bundle, open_bundle, package_artifact, read_bundle_index
from edgekit.errors import ArtifactError
from edgekit.artifact.folder import load_artifact
from edgekit.runtime.open import open_runner


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a bundle member by member, letting ``edit(name, data)`` return new bytes or None to drop it."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for info in tin:
            data = edit(info.name, tin.extractfile(info).read())
            if data is not None:
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
    return dst


@pytest.fixture
def bundle(cpu_artifact: Path, tmp_path: Path) -> Path:
    return package_artifact(cpu_artifact, tmp_path / "tiny.tar.gz")


def test_round_trip_keeps_files_and_outputs(cpu_artifact: Path, bundle: Path, tmp_path: Path):
    index = read_bundle_index(bundle)
    assert (index.target, index.precision, index.bundle_version) == ("cpu", "fp32", 1)
    assert set(index.files) == {"manifest.json", "model.onnx"}
    artifact = extract_bundle(bundle, tmp_path / "out")
    assert (artifact.folder / "model.onnx").read_bytes() == (cpu_artifact / "model.onnx").read_bytes()
    assert artifact.manifest.preprocess == load_artifact(cpu_artifact).manifest.preprocess
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    outs = []
    for a in (load_artifact(cpu_artifact), artifact):
        with open_runner(a) as runner:
            outs.append(runner.infer({"input": x})["logits"])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_same_artifact_same_bytes(cpu_artifact: Path, bundle: Path, tmp_path: Path):
    again = package_artifact(cpu_artifact, tmp_path / "again.tar.gz")
    assert again.read_bytes() == bundle.read_bytes()


def test_compiled_files_stay_behind(cpu_artifact: Path, tmp_path: Path):
    compile_artifact(cpu_artifact)
    bundle = package_artifact(cpu_artifact, tmp_path / "b.tar.gz")
    assert "model.ort.onnx" not in read_bundle_index(bundle).files
    with open_bundle(bundle) as artifact:
        assert artifact.manifest.engine_file is None and "onnxruntime" not in artifact.manifest.session
        folder = artifact.folder
    assert not folder.exists()


def test_tampered_member_is_refused(bundle: Path, tmp_path: Path):
    bad = _rewrite(bundle, tmp_path / "bad.tar.gz",
                   lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n.endswith("model.onnx") else d)
    with pytest.raises(ArtifactError, match="checksum"):
        extract_bundle(bad, tmp_path / "out")


def test_unlisted_member_is_refused(bundle: Path, tmp_path: Path):
    with tarfile.open(bundle, "r:gz") as tin:
        members = [(i, tin.extractfile(i).read()) for i in tin]
    bad = tmp_path / "extra.tar.gz"
    with tarfile.open(bad, "w:gz") as tout:
        for info, data in members + [(tarfile.TarInfo("artifact/evil.sh"), b"rm -rf /")]:
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    with pytest.raises(ArtifactError, match="does not list"):
        extract_bundle(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "evil.sh").exists()


def test_missing_member_is_refused(bundle: Path, tmp_path: Path):
    bad = _rewrite(bundle, tmp_path / "short.tar.gz", lambda n, d: None if n.endswith("model.onnx") else d)
    with pytest.raises(ArtifactError, match="incomplete"):
        extract_bundle(bad, tmp_path / "out")


def test_truncated_bundle_is_refused(bundle: Path, tmp_path: Path):
    data = bundle.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ArtifactError, match="truncated"):
        extract_bundle(cut, tmp_path / "out")


def test_newer_format_and_foreign_tars_are_refused(bundle: Path, tmp_path: Path):
    def newer(name, data):
        return json.dumps({**json.loads(data), "bundle_version": 99}).encode() if name == "bundle.json" else data

    with pytest.raises(ArtifactError, match="upgrade edgekit"):
        read_bundle_index(_rewrite(bundle, tmp_path / "new.tar.gz", newer))
    foreign = tmp_path / "foreign.tar.gz"
    with gzip.open(foreign, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(ArtifactError, match="not an edgekit bundle"):
        read_bundle_index(foreign)


def test_bundle_name_must_say_tar_gz(cpu_artifact: Path, tmp_path: Path):
    with pytest.raises(ArtifactError, match=".tar.gz"):
        package_artifact(cpu_artifact, tmp_path / "b.zip")


def test_package_cli_then_compile_cli(cpu_artifact: Path, tmp_path: Path, capsys):
    from edgekit.cli.main import main

    out = tmp_path / "tiny.tar.gz"
    assert main(["package", str(cpu_artifact), "-o", str(out)]) == 0
    assert "edgekit compile tiny.tar.gz" in capsys.readouterr().out
    assert main(["compile", str(out), "-o", str(tmp_path / "device"), "--runtime", "onnxruntime"]) == 0
    assert load_artifact(tmp_path / "device").manifest.engine_file == "model.ort.onnx"
    out.write_bytes(out.read_bytes()[:100])
    assert main(["compile", str(out)]) == 2
    assert "truncated" in capsys.readouterr().err
