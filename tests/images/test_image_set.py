"""CalibrationSet: folders and large images become deterministic, preprocessed NCHW batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.images.image_set import CalibrationSet
from edgekit.errors import CalibrationError, InputError
from edgekit.preprocess import Preprocess

PRE = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def write_images(folder: Path, count: int, size=(40, 48), seed: int = 0, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}{suffix}"
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        if suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(path, pixels)
        else:
            Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def test_folder_yields_preprocessed_batches_of_the_input_size(tmp_path: Path):
    write_images(tmp_path / "imgs", 6)
    batches = list(CalibrationSet(tmp_path / "imgs", (32, 32), PRE, samples=4, batch=2))
    assert [b.shape for b in batches] == [(2, 3, 32, 32)] * 2
    assert all(b.dtype == np.float32 for b in batches)


def test_mixed_formats_are_read_and_order_is_deterministic(tmp_path: Path):
    write_images(tmp_path / "imgs", 2, suffix=".png", seed=1)
    write_images(tmp_path / "imgs", 2, suffix=".jpg", seed=2)
    write_images(tmp_path / "other", 1, suffix=".tif", seed=3)[0].rename(tmp_path / "imgs" / "z.tif")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    a = CalibrationSet(tmp_path / "imgs", (32, 32), PRE)
    b = CalibrationSet(tmp_path / "imgs", (32, 32), PRE)
    assert len(a.items) == 5  # 2 PNG, 2 JPEG, 1 TIFF; the .txt is ignored
    assert [s.name for s in a.items] == [s.name for s in b.items]
    for x, y in zip(a.batches(), b.batches()):
        np.testing.assert_array_equal(x, y)


def test_crop_keeps_pixel_scale_and_takes_the_centre(tmp_path: Path):
    pixels = np.arange(50 * 60 * 3, dtype=np.uint32).reshape(50, 60, 3) % 251
    (tmp_path / "imgs").mkdir()
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "imgs" / "a.png")
    calib = CalibrationSet(tmp_path / "imgs", (32, 32), PRE)
    np.testing.assert_array_equal(calib.pixels(calib.items[0]), pixels[9:41, 14:46].astype(np.uint8))
    np.testing.assert_allclose(next(calib.batches()), PRE.apply(pixels[9:41, 14:46]), atol=1e-5)


def test_resize_scales_the_shorter_side_then_crops(tmp_path: Path):
    (tmp_path / "imgs").mkdir()
    left_dark = np.zeros((64, 128, 3), np.uint8)
    left_dark[:, 64:] = 200
    Image.fromarray(left_dark).save(tmp_path / "imgs" / "a.png")
    calib = CalibrationSet(tmp_path / "imgs", (32, 32), PRE, fit="resize")
    px = calib.pixels(calib.items[0])
    assert px.shape == (32, 32, 3)
    # 64x128 -> 32x64, centre 32 columns: half dark, half bright
    assert px[:, :14].max() < 1 and px[:, 18:].min() > 199


def test_small_image_is_enlarged_to_cover_the_input(tmp_path: Path):
    write_images(tmp_path / "imgs", 1, size=(16, 24))
    calib = CalibrationSet(tmp_path / "imgs", (32, 32), PRE)
    assert calib.pixels(calib.items[0]).shape == (32, 32, 3)


def test_grey_and_rgba_images_get_the_models_channels(tmp_path: Path):
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(tmp_path / "imgs" / "grey.png")
    Image.fromarray(np.full((32, 32, 4), 9, np.uint8)).save(tmp_path / "imgs" / "rgba.png")
    calib = CalibrationSet(tmp_path / "imgs", (32, 32), PRE)
    shapes = {s.path.name: calib.pixels(s).shape for s in calib.items}
    assert shapes == {"grey.png": (32, 32, 3), "rgba.png": (32, 32, 3)}


def test_one_large_image_is_cut_into_input_sized_tiles(tmp_path: Path):
    import tifffile

    image = np.random.default_rng(0).integers(0, 256, (70, 100, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", image)
    calib = CalibrationSet(tmp_path / "big.tif", (32, 32), PRE)
    windows = {s.window for s in calib.items}
    assert len(windows) == 3 * 4  # rows 0, 32, 38; cols 0, 32, 64, 68 (edge tiles shifted inside)
    assert all(r + 32 <= 70 and c + 32 <= 100 for r, c, _, _ in windows)
    sample = calib.items[0]
    r, c, _, _ = sample.window
    np.testing.assert_array_equal(calib.pixels(sample), image[r : r + 32, c : c + 32])


def test_held_out_images_are_disjoint_from_calibration(tmp_path: Path):
    write_images(tmp_path / "imgs", 10)
    calib = CalibrationSet(tmp_path / "imgs", (32, 32), PRE, samples=6)
    held = calib.held_out()
    assert len(held.items) == 4
    assert not {s.path for s in calib.items} & {s.path for s in held.items}
    assert len(calib.held_out(3).items) == 3


def test_samples_are_spread_over_the_set_not_the_first_names(tmp_path: Path):
    write_images(tmp_path / "imgs", 20)
    names = [s.path.name for s in CalibrationSet(tmp_path / "imgs", (32, 32), PRE, samples=5).items]
    assert len(set(names)) == 5
    assert sorted(names) != [f"img{i:02d}.png" for i in range(5)]  # a seeded shuffle, not a prefix


def test_samples_round_down_to_whole_batches(tmp_path: Path):
    write_images(tmp_path / "imgs", 7)
    calib = CalibrationSet(tmp_path / "imgs", (32, 32), PRE, samples=7, batch=3)
    assert len(calib) == 2 and len(calib.items) == 6


@pytest.mark.parametrize("make", ["missing", "empty", "no_images"])
def test_unusable_sources_are_calibration_errors(tmp_path: Path, make: str):
    source = tmp_path / "calib"
    if make != "missing":
        source.mkdir()
    if make == "no_images":
        (source / "readme.txt").write_text("x")
    with pytest.raises(CalibrationError, match="does not exist|holds no images"):
        len(CalibrationSet(source, (32, 32), PRE))


def test_too_few_images_names_both_counts(tmp_path: Path):
    write_images(tmp_path / "imgs", 3)
    with pytest.raises(CalibrationError, match=r"has 3 usable images, 5 asked"):
        len(CalibrationSet(tmp_path / "imgs", (32, 32), PRE, samples=5))


def test_nothing_left_for_held_out_is_an_error(tmp_path: Path):
    write_images(tmp_path / "imgs", 4)
    with pytest.raises(CalibrationError, match="no images left"):
        len(CalibrationSet(tmp_path / "imgs", (32, 32), PRE).held_out())


def test_unreadable_image_is_a_calibration_error(tmp_path: Path):
    write_images(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="broken.png"):
        list(CalibrationSet(tmp_path / "imgs", (32, 32), PRE).batches())


def test_image_smaller_than_the_input_cannot_be_tiled(tmp_path: Path):
    import tifffile

    tifffile.imwrite(tmp_path / "small.tif", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(CalibrationError, match="smaller than the model input"):
        len(CalibrationSet(tmp_path / "small.tif", (32, 32), PRE))
