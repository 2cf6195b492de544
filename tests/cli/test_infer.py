"""`edgekit infer` end to end: outputs, folders, and one-line errors with nothing left behind."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from edgekit.cli.main import main
from edgekit.artifact.manifest import read_manifest, seal


def _make_cpu_artifact(folder: Path, **kw) -> Path:
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("edgekit_tests_root_conftest_cli_infer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_cpu_artifact(folder, **kw)


@pytest.fixture
def artifact(tmp_path) -> Path:
    return _make_cpu_artifact(tmp_path / "art", size=64, batch=2)


@pytest.fixture
def scene(tmp_path) -> Path:
    path = tmp_path / "in" / "scene.tif"
    path.parent.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (150, 210, 3), dtype=np.uint8)
    tifffile.imwrite(path, pixels, tile=(32, 32), photometric="rgb")
    return path


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_mask_probabilities_and_preview(artifact, scene, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code = main(["infer", str(artifact), str(scene), "-o", str(out / "mask.tif"), "--overlap", "16",
                 "--blend", "linear", "--probabilities", str(out / "probs.tif"), "--preview", str(out / "view.png"),
                 "--no-progress"])
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert "scene.tif: 210x150 px" in line and "Mpx/s" in line and "tiles/s" in line
    assert _files(out) == ["mask.tif", "probs.tif", "view.png"]
    mask, probs = tifffile.imread(out / "mask.tif"), tifffile.imread(out / "probs.tif")
    assert mask.shape == (150, 210) and mask.dtype == np.uint8 and mask.max() < 3
    assert probs.shape == (150, 210, 3) and probs.dtype == np.float16
    p = probs.astype(np.float32)
    top2 = np.sort(p, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 2e-3  # float16 rounding cannot have swapped these
    np.testing.assert_array_equal(mask[clear], p.argmax(-1)[clear])


def test_png_in_png_out_and_a_folder(artifact, scene, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(tifffile.imread(scene)).save(scene.parent / "copy.png")
    np.save(scene.parent / "grey.npy", tifffile.imread(scene)[..., 0])
    code = main(["infer", str(artifact), str(scene.parent), "-o", str(tmp_path / "masks"), "--overlap", "8", "--no-progress"])
    assert code == 0
    assert _files(tmp_path / "masks") == ["copy.png", "grey.tif", "scene.tif"]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[-1] == f"3 images -> {tmp_path / 'masks'}"  # a line per image, then the total
    png = np.asarray(Image.open(tmp_path / "masks" / "copy.png"))
    np.testing.assert_array_equal(png, tifffile.imread(tmp_path / "masks" / "scene.tif"))


def _bad_inputs(tmp_path: Path, scene: Path) -> dict[str, Path]:
    data = scene.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "truncated.tif").write_bytes(data[: len(data) * 2 // 3])
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (bad / "image.gif").write_bytes(b"GIF89a")
    np.save(bad / "int32.npy", np.zeros((70, 70, 3), np.int32))
    np.save(bad / "five.npy", np.zeros((70, 70, 5), np.uint8))
    nan = np.ones((70, 70, 3), np.float32)
    nan[3, 4, 0] = np.nan
    np.save(bad / "nan.npy", nan)
    return {p.stem: p for p in bad.iterdir()}


@pytest.mark.parametrize("case,message", [
    ("truncated", "truncated"), ("corrupt", "not a readable image"), ("image", "unsupported format .gif"),
    ("int32", "pixel type int32"), ("five", "5 bands"), ("nan", "NaN"),
])
def test_bad_images_give_one_line_and_no_output(artifact, scene, tmp_path, capsys, case, message):
    image = _bad_inputs(tmp_path, scene)[case]
    out = tmp_path / "out"
    out.mkdir()
    code = main(["infer", str(artifact), str(image), "-o", str(out / "m.tif"), "--overlap", "8",
                 "--probabilities", str(out / "p.tif"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert _files(out) == []


def test_wrong_output_formats_are_refused_before_work(artifact, scene, tmp_path, capsys):
    for args, message in [(["-o", str(tmp_path / "m.jpg")], ".tif or .tiff or .png"),
                          (["-o", str(tmp_path / "m.tif"), "--probabilities", str(tmp_path / "p.png")], "float16"),
                          (["-o", str(tmp_path / "m.tif"), "--preview", str(tmp_path / "v.tif")], "preview")]:
        assert main(["infer", str(artifact), str(scene), *args, "--no-progress"]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art", "in"]


def test_missing_or_unwritable_output_folder(artifact, scene, tmp_path, capsys):
    assert main(["infer", str(artifact), str(scene), "-o", str(tmp_path / "nope" / "m.tif"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert main(["infer", str(artifact), str(scene), "-o", str(locked / "m.tif"), "--no-progress"]) == 2
        assert "not writable" in capsys.readouterr().err


def test_incomplete_or_foreign_artifacts(artifact, scene, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (artifact / "model.onnx").unlink()
    assert main(["infer", str(artifact), str(scene), "-o", str(out / "m.tif"), "--no-progress"]) == 2
    assert "incomplete" in capsys.readouterr().err
    other = _make_cpu_artifact(tmp_path / "orin")
    (other / "model.engine").write_bytes(b"engine built elsewhere")
    m = read_manifest(other)
    seal(other, m.evolve(backend="tensorrt", engine_file="model.engine", versions={"tensorrt": "10.3.0"},
                         device={"gpu_name": "Orin", "compute_capability": "8.7"}))
    assert main(["infer", str(other), str(scene), "-o", str(out / "m.tif"), "--no-progress"]) == 2
    assert "TensorRT" in capsys.readouterr().err
    assert _files(out) == []


def test_infer_runs_without_importing_torch(artifact, scene, tmp_path):
    code = (
        "import json, sys\n"
        "from edgekit.cli.main import main\n"
        f"rc = main(['infer', {str(artifact)!r}, {str(scene)!r}, '-o', {str(tmp_path / 'm.tif')!r}, '--overlap', '8',"
        " '--no-progress'])\n"
        "print(json.dumps([rc, [m for m in ('torch', 'timm') if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [0, []]


# --- a folder: every image checked before writing, a failure part way a partial run (exit 1) ------

def _nonblank(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _png(path, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)


def test_infer_checks_every_image_of_a_folder_before_writing_any(cpu_artifact, tmp_path, capsys):
    scenes, masks = tmp_path / "scenes", tmp_path / "masks"
    scenes.mkdir()
    _png(scenes / "a.png")
    (scenes / "b.png").write_bytes(b"not a png")
    assert main(["infer", str(cpu_artifact), str(scenes), "-o", str(masks), "--overlap", "16", "--no-progress"]) == 2
    err = _nonblank(capsys.readouterr().err)
    assert len(err) == 1 and "b.png" in err[0] and "not a readable image" in err[0]
    assert not masks.exists() or not any(masks.iterdir())


def test_infer_over_a_folder_that_fails_part_way_exits_1_saying_how_many_were_done(cpu_artifact, tmp_path, capsys):
    """b.npy opens and plans fine (the check before writing passes), then its NaN pixels stop the
    run after a.npy's mask was written: a partial run."""
    scenes, masks = tmp_path / "scenes", tmp_path / "masks"
    scenes.mkdir()
    rng = np.random.default_rng(0)
    np.save(scenes / "a.npy", rng.random((64, 64, 3), dtype=np.float32) * 255)
    nan = rng.random((64, 64, 3), dtype=np.float32) * 255
    nan[40, 40] = np.nan
    np.save(scenes / "b.npy", nan)
    assert main(["infer", str(cpu_artifact), str(scenes), "-o", str(masks), "--overlap", "16", "--no-progress"]) == 1
    captured = capsys.readouterr()
    err = _nonblank(captured.err)
    assert len(err) == 1 and "partial: 1 of 2 images done" in err[0] and "b.npy" in err[0] and "NaN" in err[0]
    assert "a.npy" in captured.out  # the image done was reported
    assert sorted(p.name for p in masks.iterdir()) == ["a.tif"]


def test_infer_over_a_folder_whose_first_image_fails_keeps_that_error(cpu_artifact, tmp_path, capsys):
    """Nothing was written yet: the image's own error and status (bad input, 2), not a partial run."""
    scenes, masks = tmp_path / "scenes", tmp_path / "masks"
    scenes.mkdir()
    nan = np.zeros((64, 64, 3), np.float32)
    nan[0, 0] = np.nan
    np.save(scenes / "a.npy", nan)
    assert main(["infer", str(cpu_artifact), str(scenes), "-o", str(masks), "--overlap", "16", "--no-progress"]) == 2
    assert "partial" not in capsys.readouterr().err and not any(masks.iterdir())
