"""`--device N` on infer, run, profile and compare: parsed, carried to every runner the command opens,
recorded in the reports, and refused in one line (exit 2) where it cannot mean a GPU."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from edgekit.cli.main import main
from edgekit.runtime import open as runtime_open
from tests.conftest import make_cpu_artifact
from tests.detect.detect_fixtures import make_detector_artifact
from tests.profile.profile_fixtures import write_images

FAST = ["--warmup", "0.02", "--duration", "0.05"]


@pytest.fixture
def opened(monkeypatch):
    """``record(module)``: every runner ``module`` opens is recorded as (backend, device) and opened on
    the artifact's CPU runner instead (no GPU here), so a command asked for GPU 1 runs to its end."""
    calls: list[tuple[str | None, int]] = []
    real = runtime_open.open_runner

    def record(module) -> list[tuple[str | None, int]]:
        def recording(artifact, backend=None, threads=0, providers=None, device=0):
            calls.append((backend, device))
            return real(artifact, "onnxruntime", threads)

        monkeypatch.setattr(module, "open_runner", recording)
        return calls

    return record


def _tif(path: Path, hw=(80, 100)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8), photometric="rgb")
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


GPU_1 = ["--backend", "onnxruntime-cuda", "--device", "1"]


def test_infer_one_image_and_a_folder(tmp_path, opened):
    import edgekit.cli.infer
    import edgekit.tiling.execute

    art = make_cpu_artifact(tmp_path / "art", size=32)
    scene = _tif(tmp_path / "in" / "a.tif")
    one = opened(edgekit.tiling.execute)
    assert main(["infer", str(art), str(scene), "-o", str(tmp_path / "a.tif"), "--overlap", "8", *GPU_1]) == 0
    assert one == [("onnxruntime-cuda", 1)]
    folder = opened(edgekit.cli.infer)  # a folder: one runner, opened by the command for every image
    one.clear()
    assert main(["infer", str(art), str(scene.parent), "-o", str(tmp_path / "masks"), "--overlap", "8", *GPU_1]) == 0
    assert folder == [("onnxruntime-cuda", 1)] and (tmp_path / "masks" / "a.tif").is_file()


def test_infer_a_detector(tmp_path, opened):
    import edgekit.detect.execute

    art = make_detector_artifact(tmp_path / "det", size=32)
    calls = opened(edgekit.detect.execute)
    scene = _tif(tmp_path / "in" / "a.tif")
    assert main(["infer", str(art), str(scene), "-o", str(tmp_path / "boxes.json"), "--overlap", "8", *GPU_1]) == 0
    assert calls == [("onnxruntime-cuda", 1)] and (tmp_path / "boxes.json").is_file()


def test_run_gives_every_scene_the_device_and_records_it(tmp_path, opened):
    import edgekit.run.scene
    from edgekit.run.ledger import read_rows

    art = make_cpu_artifact(tmp_path / "art", size=32)
    for name in ("a", "b"):
        _tif(tmp_path / "in" / f"{name}.tif")
    calls = opened(edgekit.run.scene)
    code = main(["run", str(art), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--workers", "1",
                 "--overlap", "8", "--no-progress", *GPU_1])
    assert code == 0 and calls == [("onnxruntime-cuda", 1)]  # one worker, one runner for both scenes
    start = read_rows(tmp_path / "out")[0]
    assert start["kind"] == "start" and start["device"] == 1


def test_profile_records_the_gpu_of_its_figures(tmp_path, opened, capsys):
    import edgekit.profile.measure

    art = make_cpu_artifact(tmp_path / "art", size=16)
    calls = opened(edgekit.profile.measure)
    code = main(["profile", str(art), "--iterations", "3", "--warmup", "0", "--no-power", "--json",
                 str(tmp_path / "p.json"), *GPU_1])
    assert code == 0 and calls == [("onnxruntime-cuda", 1)]
    assert json.loads((tmp_path / "p.json").read_text())["gpu"] == 1
    said = " ".join(capsys.readouterr().out.split())  # the console wraps a long path's line at its width
    assert "cpu, onnxruntime-cuda on GPU 1 (" in said  # the summary says which GPU


def test_compare_gives_gpu_artifacts_the_device_and_records_it(tmp_path, opened):
    import edgekit.profile.compare

    arts = [str(make_cpu_artifact(tmp_path / name, size=32, seed=i)) for i, name in enumerate(("a", "b"))]
    images = write_images(tmp_path / "images", count=1)
    calls = opened(edgekit.profile.compare)
    code = main(["compare", *arts, "--images", str(images), *FAST, "--overlap", "8", "--json",
                 str(tmp_path / "c.json"), *GPU_1])
    assert code == 0 and calls == [("onnxruntime-cuda", 1)] * 2
    assert [r["gpu"] for r in json.loads((tmp_path / "c.json").read_text())["results"]] == [1, 1]


def test_compare_runs_a_cpu_reference_on_the_cpu_beside_a_gpu_candidate(tmp_path, opened):
    """--device picks the GPU of the artifacts on a GPU backend; one on a CPU backend stays there."""
    import edgekit.profile.compare
    from edgekit.artifact.manifest import read_manifest, seal

    ref = make_cpu_artifact(tmp_path / "ref", size=32)
    gpu = make_cpu_artifact(tmp_path / "gpu", size=32)
    seal(gpu, read_manifest(gpu).evolve(backend="onnxruntime-cuda"))
    images = write_images(tmp_path / "images", count=1)
    calls = opened(edgekit.profile.compare)
    code = main(["compare", str(ref), str(gpu), "--images", str(images), *FAST, "--overlap", "8", "--json",
                 str(tmp_path / "c.json"), "--markdown", str(tmp_path / "c.md"), "--device", "1"])
    assert code == 0 and calls == [("onnxruntime", 0), ("onnxruntime-cuda", 1)]
    assert [r["gpu"] for r in json.loads((tmp_path / "c.json").read_text())["results"]] == [None, 1]
    rows = (tmp_path / "c.md").read_text().splitlines()
    assert "| ref | fp32 | onnxruntime |" in rows[2] and "| gpu | fp32 | onnxruntime-cuda (GPU 1) |" in rows[3]


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    art = make_cpu_artifact(tmp_path / "art", size=32)
    scene = _tif(tmp_path / "in" / "a.tif")
    images = write_images(tmp_path / "images", count=1)
    return {
        "infer": ["infer", str(art), str(scene), "-o", str(tmp_path / "mask.tif"), "--overlap", "8"],
        "run": ["run", str(art), str(scene.parent), "-o", str(tmp_path / "out"), "--workers", "1", "--overlap", "8",
                "--no-progress"],
        "profile": ["profile", str(art), "--iterations", "2", "--no-power"],
        "compare": ["compare", str(art), "--images", str(images), *FAST, "--overlap", "8"],
    }


@pytest.mark.parametrize("command", ["infer", "run", "profile", "compare"])
def test_a_gpu_index_on_a_cpu_artifact_is_one_line(tmp_path, capsys, command):
    args = _commands(tmp_path)[command]
    assert main([*args, "--device", "1"]) == 2  # the artifact's backend: onnxruntime, on the CPU
    assert "--device 1 picks a GPU, but the onnxruntime backend runs on the CPU" in _error_line(capsys)
    assert main([*args, "--backend", "openvino", "--device", "2"]) == 2  # refused before anything opens
    assert "the openvino backend runs on the CPU" in _error_line(capsys)
    assert main([*args, "--device", "-1"]) == 2
    assert "--device -1 is not a GPU index" in _error_line(capsys)
    assert not (tmp_path / "mask.tif").exists() and not (tmp_path / "out" / "a.tif").exists()
    assert main([*args, "--device", "0"]) == 0  # 0, the default, is every CPU backend's one device


def test_ray_gives_each_worker_its_gpu_and_refuses_device(tmp_path, capsys):
    args = _commands(tmp_path)["run"]
    assert main([*args, "--ray", "local", *GPU_1]) == 2
    assert "on Ray each worker is given its own GPU" in _error_line(capsys)


def test_a_device_beyond_the_gpus_here_is_one_line(tmp_path, capsys, monkeypatch):
    """onnxruntime-cuda on a machine whose driver sees one GPU (the probes say so): --device 3 names the range."""
    import edgekit.device
    import edgekit.runtime.onnxrt

    monkeypatch.setattr(edgekit.device, "gpu_count", lambda lib=None: 1)
    monkeypatch.setattr(edgekit.runtime.onnxrt, "available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    art = make_cpu_artifact(tmp_path / "art", size=16)
    assert main(["profile", str(art), "--backend", "onnxruntime-cuda", "--device", "3", "--no-power"]) == 2
    assert "--device 3 is out of range: this machine has 1 CUDA device (0)" in _error_line(capsys)
