"""Windowed readers equal slices of the whole image; writers round-trip; damaged files are user errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import tifffile

from edgekit.errors import InputError
from edgekit.images.readers import TiffSource, open_image
from edgekit.tiling.writers import open_writer

WINDOWS = [(0, 0, 64, 64), (650, 500, 50, 30), (123, 77, 200, 301), (0, 0, 700, 530)]


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (700, 530, 3), dtype=np.uint8)


@pytest.mark.parametrize("layout", [
    {"tile": (64, 128)},
    {"rowsperstrip": 7},
    {"rowsperstrip": 16, "compression": "zlib"},
    {"tile": (32, 32), "bigtiff": True, "compression": "zlib"},
])
def test_tiff_windows_equal_slices(tmp_path, pixels, layout):
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", **layout)
    with open_image(path) as src:
        assert isinstance(src, TiffSource) and src.shape == pixels.shape and src.nodata is None
        for r, c, h, w in WINDOWS:
            np.testing.assert_array_equal(src.read(r, c, h, w), pixels[r:r + h, c:c + w])


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int16])
def test_planar_and_other_dtypes(tmp_path, pixels, dtype):
    data = (pixels.astype(np.float32) / 255).astype(dtype) if dtype == np.float32 else pixels.astype(dtype) * 100
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, data.transpose(2, 0, 1), planarconfig="separate", photometric="rgb", rowsperstrip=16)
    with open_image(path) as src:
        assert src.dtype == dtype and src.shape == data.shape
        np.testing.assert_array_equal(src.read(123, 77, 200, 301), data[123:323, 77:378])


def test_segment_cache_stays_bounded(tmp_path):
    big = np.zeros((4096, 256), np.uint8)
    tifffile.imwrite(tmp_path / "tall.tif", big, rowsperstrip=8)
    with TiffSource(tmp_path / "tall.tif", cache_rows=64) as src:
        for r in range(0, 4096 - 64, 64):
            src.read(r, 0, 64, 256)
        assert src._cached <= src._budget


def test_nodata_tag_is_read(tmp_path):
    tifffile.imwrite(tmp_path / "nd.tif", np.zeros((40, 40), np.int16), extratags=[(42113, "s", 0, "-9999", True)])
    with open_image(tmp_path / "nd.tif") as src:
        assert src.nodata == -9999


def test_npy_png_jpeg(tmp_path, pixels):
    from PIL import Image

    np.save(tmp_path / "a.npy", pixels[..., 0])
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=95)
    with open_image(tmp_path / "a.npy") as src:
        assert src.shape == (700, 530, 1)
        np.testing.assert_array_equal(src.read(5, 6, 7, 8)[..., 0], pixels[5:12, 6:14, 0])
    with open_image(tmp_path / "a.png") as src:
        np.testing.assert_array_equal(src.read(5, 6, 70, 80), pixels[5:75, 6:86])
    with open_image(tmp_path / "a.jpg") as src:
        assert src.shape == pixels.shape and src.dtype == np.uint8


def test_geotiff_keeps_georeferencing(tmp_path, pixels):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    transform = from_origin(500000, 4600000, 0.5, 0.5)
    with rasterio.open(tmp_path / "geo.tif", "w", driver="GTiff", height=700, width=530, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=transform, nodata=0) as ds:
        ds.write(pixels.transpose(2, 0, 1))
    with open_image(tmp_path / "geo.tif") as src:
        assert src.georef["transform"] == transform and src.nodata == 0
        np.testing.assert_array_equal(src.read(10, 20, 30, 40), pixels[10:40, 20:60])
        georef = src.georef
    with open_writer(tmp_path / "out.tif", ".tif", 700, 530, 1, np.uint8, georef, 255) as w:
        w.write(pixels[:400, :, 0])
        w.write(pixels[400:, :, 0])
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == transform and ds.nodata == 255
        np.testing.assert_array_equal(ds.read(1), pixels[..., 0])
    probs = pixels.astype(np.float16) / 255
    with open_writer(tmp_path / "probs.tif", ".tif", 700, 530, 3, np.float16, georef) as w:  # GDAL has no float16
        w.write(probs)
    with tifffile.TiffFile(tmp_path / "probs.tif") as tif:
        assert tif.pages.first.is_geotiff and tif.pages.first.dtype == np.float16
    with rasterio.open(tmp_path / "probs.tif") as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == transform


@pytest.mark.parametrize("suffix,bands,dtype", [(".tif", 1, np.uint8), (".tif", 3, np.float16), (".png", 1, np.uint8)])
def test_writers_round_trip_rows_in_uneven_blocks(tmp_path, pixels, suffix, bands, dtype):
    data = pixels[..., :bands].astype(dtype)
    path = tmp_path / f"out{suffix}"
    with open_writer(path, suffix, 700, 530, bands, dtype) as w:
        for r in range(0, 700, 33):
            w.write(data[r:r + 33])
    if suffix == ".tif":
        with tifffile.TiffFile(path) as tif:
            assert tif.pages.first.is_tiled
    with open_image(path) as src:
        np.testing.assert_array_equal(src.read(0, 0, 700, 530), data.reshape(700, 530, bands))


def test_writer_refuses_unfinished_images(tmp_path, pixels):
    with pytest.raises(ValueError, match="rows written"):
        with open_writer(tmp_path / "short.tif", ".tif", 700, 530, 1, np.uint8) as w:
            w.write(pixels[:100, :, 0])


def test_damaged_and_unsupported_files_are_input_errors(tmp_path, pixels):
    tifffile.imwrite(tmp_path / "ok.tif", pixels, tile=(64, 64))
    data = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "truncated.tif").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.tif").write_bytes(b"II*\x00" + bytes(100))
    (tmp_path / "noise.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    np.save(tmp_path / "complex.npy", np.zeros((8, 8), np.complex64))
    np.save(tmp_path / "cube.npy", np.zeros((2, 8, 8, 3), np.uint8))
    (tmp_path / "x.bmp").write_bytes(b"BM")
    for name, pattern in [("truncated.tif", "truncated"), ("garbage.tif", "TIFF|image"), ("noise.png", "not a readable"),
                          ("complex.npy", "pixel type complex64; supported"), ("cube.npy", "expected"),
                          ("x.bmp", "unsupported format"), ("missing.tif", "does not exist")]:
        with pytest.raises(InputError, match=pattern):
            open_image(tmp_path / name)


GEO_TAGS = {  # ModelPixelScale, ModelTiepoint, GeoKeyDirectory (UTM 17N, pixel is area), GeoDoubleParams, GeoAsciiParams
    33550: ("d", (0.5, 0.5, 0.0)),
    33922: ("d", (0.0, 0.0, 0.0, 500000.0, 4100000.0, 0.0)),
    34735: ("H", (1, 1, 0, 5, 1024, 0, 1, 1, 1025, 0, 1, 1, 2057, 34736, 1, 0, 3072, 0, 1, 32617,
                  3073, 34737, 23, 0)),
    34736: ("d", (6378137.0,)),
    34737: ("s", "WGS 84 / UTM zone 17N|"),
}
TRANSFORM_TAGS = {k: v for k, v in GEO_TAGS.items() if k not in (33550, 33922)} | {  # ModelTransformation instead
    34264: ("d", (0.5, 0.0, 0.0, 500000.0, 0.0, -0.5, 0.0, 4100000.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0))}


def _tags(path) -> dict:
    """The GeoTIFF and GDAL_NODATA tags of a file's first page, code -> value (tuples and strings)."""
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        return {t.code: (tuple(t.value) if isinstance(t.value, (tuple, list, np.ndarray)) else t.value)
                for t in tags.values() if t.code in (*GEO_TAGS, 34264, 42113)}


@pytest.mark.parametrize("geo", [GEO_TAGS, TRANSFORM_TAGS], ids=["tiepoint", "transformation"])
def test_geotiff_tags_are_carried_without_rasterio(tmp_path, pixels, monkeypatch, geo):
    """No rasterio: the file is read by tifffile and its georeferencing tags are written to every .tif
    output as they were (GDAL_NODATA: the output's own nodata)."""
    path = tmp_path / "geo.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", tile=(64, 64),
                     extratags=[(code, dtype, 0 if dtype == "s" else len(value), value, True) for code, (dtype, value) in geo.items()]
                     + [(42113, "s", 0, "0", True)])
    given = _tags(path)
    assert set(given) == {*geo, 42113}
    monkeypatch.setitem(sys.modules, "rasterio", None)  # `import rasterio` fails as if not installed
    with open_image(path) as src:
        assert isinstance(src, TiffSource) and src.nodata == 0
        georef = src.georef
    with open_writer(tmp_path / "mask.tif", ".tif", 700, 530, 1, np.uint8, georef, 255) as w:
        w.write(pixels[..., 0])
    with open_writer(tmp_path / "probs.tif", ".tif", 700, 530, 3, np.float16, georef) as w:
        w.write(pixels.astype(np.float16) / 255)
    geo_only = {k: v for k, v in given.items() if k != 42113}
    assert _tags(tmp_path / "mask.tif") == geo_only | {42113: "255"}
    assert _tags(tmp_path / "probs.tif") == geo_only
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mask.tif"), pixels[..., 0])
    monkeypatch.delitem(sys.modules, "rasterio")
    rasterio = pytest.importorskip("rasterio")  # GDAL reads the same place from input and outputs
    with rasterio.open(path) as ds:
        crs, transform = ds.crs, ds.transform
    assert crs.to_epsg() == 32617 and transform.a == 0.5 and transform.c == 500000.0
    for out in ("mask.tif", "probs.tif"):
        with rasterio.open(tmp_path / out) as ds:
            assert ds.crs == crs and ds.transform == transform
