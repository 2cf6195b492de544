"""The pixel map: declared bands and scale, one-line errors naming both sides, the multi-page warning."""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import tifffile

from edgekit.cli.main import main
from edgekit.errors import ConfigError, InputError
from edgekit.images import PixelMap, open_image
from edgekit.preprocess import Preprocess, pixel_types_for
from tests.conftest import declare_units, make_cpu_artifact


def _map(path, preprocess=Preprocess()):
    with open_image(path) as src:
        return PixelMap.for_source(src, preprocess, (8, 8)), src.read(0, 0, 8, 8)


def test_declared_bands_pick_file_bands_from_one(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    np.save(tmp_path / "ms.npy", pixels)
    pmap, raw = _map(tmp_path / "ms.npy", Preprocess(bands=(4, 3, 2)))
    np.testing.assert_array_equal(pmap.channels(raw), pixels[..., [3, 2, 1]])
    x, _ = pmap.model_input(raw)
    np.testing.assert_allclose(x, Preprocess().apply(pixels[..., [3, 2, 1]])[0])


@pytest.mark.parametrize("shape, preprocess, match", [
    ((8, 8, 2), Preprocess(), "has 2 bands and the model takes 3 channels"),
    ((8, 8, 3), Preprocess(bands=(4, 3, 2)), r"has 3 bands but the artifact declares bands \[4, 3, 2\]"),
])
def test_band_mismatch_is_one_line(tmp_path, shape, preprocess, match):
    np.save(tmp_path / "x.npy", np.zeros(shape, np.uint8))
    with pytest.raises(InputError, match=match) as info:
        _map(tmp_path / "x.npy", preprocess)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("dtype, scale", [(np.uint16, 255.0), (np.uint8, 65535.0), (np.int16, 65535.0)])
def test_type_that_does_not_fit_the_declared_scale(tmp_path, dtype, scale):
    np.save(tmp_path / "x.npy", np.zeros((8, 8, 3), dtype))
    with pytest.raises(InputError, match=f"holds {np.dtype(dtype).name} pixels but the artifact declares scale {scale:g}"):
        _map(tmp_path / "x.npy", Preprocess(scale=scale))


def test_types_each_scale_fits():
    assert pixel_types_for(255)[0] == "uint8" and "uint16" not in pixel_types_for(255)
    assert {"int16", "uint16"} <= set(pixel_types_for(10000)) and "uint8" not in pixel_types_for(4095)
    assert "int16" not in pixel_types_for(65535) and pixel_types_for(1) == ("float16", "float32", "float64")
    with pytest.raises(ConfigError, match="must name 3 file bands"):
        Preprocess(bands=(1, 2))


def test_units_round_trip_through_the_manifest_dict():
    pre = Preprocess(scale=10000, bands=(4, 3, 2))
    assert Preprocess.from_dict(pre.to_dict()) == pre
    assert "bands" not in Preprocess().to_dict()  # old manifests stay byte-identical


def test_multi_page_tiff_warns_naming_the_page(tmp_path, caplog):
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        for i in range(3):
            tif.write(np.full((8, 8, 3), i, np.uint8), photometric="rgb")
    with caplog.at_level(logging.WARNING, logger="edgekit"):
        pmap, raw = _map(tmp_path / "pages.tif")
    assert "pages.tif holds 3 images (pages); reading page 1 only" in caplog.text
    assert (raw == 0).all()


@pytest.fixture
def art(tmp_path):
    return make_cpu_artifact(tmp_path / "art", size=16)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("make, scale, bands, match", [
    (lambda: np.zeros((20, 20, 3), np.uint16), None, None, "holds uint16 pixels but the artifact declares scale 255"),
    (lambda: np.zeros((20, 20, 5), np.uint8), None, None, "has 5 bands and the model takes 3 channels"),
    (lambda: np.zeros((20, 20, 3), np.uint16), 65535, (4, 3, 2), r"has 3 bands but the artifact declares bands \[4, 3, 2\]"),
])
def test_cli_infer_refuses_in_one_line_and_writes_nothing(art, tmp_path, capsys, make, scale, bands, match):
    if scale is not None:
        declare_units(art, scale, bands)
    np.save(tmp_path / "scene.npy", make())
    out = tmp_path / "out"
    out.mkdir()
    assert main(["infer", str(art), str(tmp_path / "scene.npy"), "-o", str(out / "mask.tif"),
                 "--preview", str(out / "view.png"), "--overlap", "4", "--no-progress"]) == 2
    assert pytest.importorskip("re").search(match, _one_line(capsys))
    assert list(out.iterdir()) == []


def test_cli_infer_warns_about_other_pages_and_runs(art, tmp_path, caplog):
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        for i in range(2):
            tif.write(np.full((20, 20, 3), 10 * i, np.uint8), photometric="rgb")
    with caplog.at_level(logging.WARNING, logger="edgekit"):  # the CLI shows it on stderr (logging's last resort)
        assert main(["infer", str(art), str(tmp_path / "pages.tif"), "-o", str(tmp_path / "m.tif"),
                     "--overlap", "4", "--no-progress"]) == 0
    assert "pages.tif holds 2 images (pages); reading page 1 only, the other 1 are ignored" in caplog.text
    assert tifffile.imread(tmp_path / "m.tif").shape == (20, 20)


def test_cli_build_refuses_a_calibration_set_of_the_wrong_type(tmp_path, capsys):
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        tifffile.imwrite(calib / f"t{i}.tif", np.zeros((32, 32, 3), np.uint16), photometric="rgb")
    onnx = make_cpu_artifact(tmp_path / "src", size=32) / "model.onnx"
    shutil.copy(onnx, tmp_path / "m.onnx")
    code = main(["build", str(tmp_path / "m.onnx"), "--task", "segmentation", "--precision", "int8",
                 "--calib", str(calib), "--latency-runs", "0", "-o", str(tmp_path / "out")])
    assert code == 2 and "holds uint16 pixels but the artifact declares scale 255" in _one_line(capsys)
    assert not (tmp_path / "out").exists()
