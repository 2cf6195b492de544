"""Image readers that read window by window: the one place edgekit opens an input image.

Readers: tifffile for TIFF / BigTIFF (tiled or striped: only the segments a window touches are
read and decoded, through tifffile's own decoder), rasterio for GeoTIFF (windows and
georeferencing), Pillow for PNG / JPEG, ``np.load(mmap_mode='r')`` for ``.npy``. A TIFF holding
several images is read from its first page, with a warning that names it.

A GeoTIFF's georeferencing tags (``georef["tifftags"]``) are kept whichever reader opens it, so a
``.tif`` output carries them even where rasterio is not installed (tifffile then reads the pixels
and :mod:`edgekit.tiling.writers` writes the tags back); the CRS and transform as objects
(``georef["crs"]``, ``["transform"]``, what GeoJSON and GeoPackage outputs need) come from rasterio.
"""
from __future__ import annotations

__all__ = [
    "ImageSource",
    "open_image",
    "list_images",
    "IMAGE_SUFFIXES",
    "SUPPORTED_DTYPES",
]

import logging
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from edgekit.errors import InputError

LOG = logging.getLogger("edgekit")

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy")
SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "float16", "float32", "float64")


class ImageSource(ABC):
    """An open image: ``shape`` (H, W, C), ``dtype``, ``nodata`` (or None), windowed ``read``."""

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    nodata: float | None = None
    georef: dict | None = None  # a GeoTIFF's: {"tifftags": ...}, and "crs", "transform" when rasterio read it

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the file."""

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Pixels of a window inside the image, (height, width, C) in the file's dtype."""
        h, w, _ = self.shape
        if row < 0 or col < 0 or height <= 0 or width <= 0 or row + height > h or col + width > w:
            raise ValueError(f"window ({row}, {col}, {height}, {width}) is outside the {h}x{w} image")
        try:
            return self._read(row, col, height, width)
        except InputError:
            raise
        except Exception as exc:  # a decoder's own error on a damaged file
            raise InputError(f"{self.path.name} cannot be read at rows {row}..{row + height}: {_first_line(exc)}") from None

    @abstractmethod
    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray: ...


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a library's warnings while it probes a file (a damaged file is reported by us, once)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_dtype(path: Path, dtype) -> np.dtype:
    if dtype is None or np.dtype(dtype).name not in SUPPORTED_DTYPES:
        raise InputError(f"{path.name} has pixel type {dtype}; supported: {', '.join(SUPPORTED_DTYPES)}")
    return np.dtype(dtype)


class TiffSource(ImageSource):
    """TIFF / BigTIFF, tiled or striped: a window reads and decodes only the segments it touches.

    Decoded segments are kept in a small LRU cache so that neighbouring windows (and strips wider
    than a tile) are decoded once or twice, not once per window. Its size follows the window size
    ``cache_rows`` and the segment size (for strips, the image width), never the image height.
    """

    def __init__(self, path: Path, cache_rows: int = 1024):
        import tifffile

        self.path = Path(path)
        try:
            with _quiet("tifffile"):
                self._tif = tifffile.TiffFile(self.path)
                if not len(self._tif.pages):
                    raise InputError(f"{self.path.name} holds no image")
                page = self._tif.pages.first
                page.decode  # noqa: B018 - raises for compressions this install cannot decode
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{self.path.name} is not a readable TIFF: {_first_line(exc)}") from None
        self._page = page
        separate, depth, height, width, contig = page.shaped
        if depth != 1:
            self.close()
            raise InputError(f"{self.path.name} is a 3-D TIFF (depth {depth}); edgekit infer reads 2-D images")
        self.shape = (height, width, separate * contig)
        self.dtype = _check_dtype(self.path, page.dtype)
        self._separate = separate > 1
        self.nodata = _gdal_nodata(page)
        tags = _page_geotiff_tags(page)
        self.georef = {"tifftags": tags} if tags else None  # no rasterio: the tags travel, no CRS object
        self._check_complete()
        seg_h, seg_w = (page.tilelength, page.tilewidth) if page.is_tiled else (min(page.rowsperstrip, height), width)
        span = min(width, cache_rows + seg_w) if page.is_tiled else width  # strips are full-width anyway
        self._budget = 2 * (cache_rows + seg_h) * span * self.shape[2] * self.dtype.itemsize
        self._cache: OrderedDict[int, tuple[np.ndarray, int, int, int]] = OrderedDict()
        self._cached = 0

    def _check_complete(self) -> None:
        size = os.path.getsize(self.path)
        ends = [o + n for o, n in zip(self._page.dataoffsets, self._page.databytecounts) if n]
        if not ends or max(ends) > size:
            self.close()
            raise InputError(f"{self.path.name} is truncated: its image data runs past the end of the file")

    def close(self) -> None:
        self._tif.close()

    def _segment_ids(self, row: int, col: int, height: int, width: int) -> list[int]:
        page = self._page
        H, W, _ = self.shape
        if page.is_tiled:
            sl, sw = page.tilelength, page.tilewidth
        else:
            sl, sw = min(page.rowsperstrip, H), W
        down, across = -(-H // sl), -(-W // sw)
        planes = self.shape[2] if self._separate else 1
        return [
            p * down * across + ty * across + tx
            for p in range(planes)
            for ty in range(row // sl, (row + height - 1) // sl + 1)
            for tx in range(col // sw, (col + width - 1) // sw + 1)
        ]

    def _segment(self, index: int) -> tuple[np.ndarray, int, int, int]:
        hit = self._cache.get(index)
        if hit is not None:
            self._cache.move_to_end(index)
            return hit
        page, fh = self._page, self._tif.filehandle
        fh.seek(page.dataoffsets[index])
        data = fh.read(page.databytecounts[index])
        seg, (plane, _, r0, c0, _), _ = page.decode(data, index, jpegtables=page.jpegtables)
        if seg is None:
            raise InputError(f"{self.path.name} has an empty segment {index}")
        entry = (seg[0], plane, r0, c0)
        self._cache[index] = entry
        self._cached += seg.nbytes
        while self._cached > self._budget and len(self._cache) > 1:
            _, (old, *_rest) = self._cache.popitem(last=False)
            self._cached -= old.nbytes
        return entry

    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        out = np.empty((height, width, self.shape[2]), self.dtype)
        for index in self._segment_ids(row, col, height, width):
            seg, plane, r0, c0 = self._segment(index)
            rs, re = max(row, r0), min(row + height, r0 + seg.shape[0])
            cs, ce = max(col, c0), min(col + width, c0 + seg.shape[1])
            if rs >= re or cs >= ce:
                continue
            piece = seg[rs - r0:re - r0, cs - c0:ce - c0]
            bands = slice(plane, plane + 1) if self._separate else slice(None)
            out[rs - row:re - row, cs - col:ce - col, bands] = piece
        return out


def _gdal_nodata(page) -> float | None:
    tag = page.tags.get(42113)  # GDAL_NODATA, an ASCII number
    if tag is None:
        return None
    try:
        return float(str(tag.value).strip("\x00 "))
    except ValueError:
        return None


GEOTIFF_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)  # pixel scale, tiepoints, transform, geokeys, params
# GDAL_NODATA (42113) is not among them: an output writes its own nodata (the mask's 255), not the input's.


def _page_geotiff_tags(page) -> tuple:
    """A TIFF page's georeferencing tags as tifffile ``extratags`` (empty when it has none)."""
    tags = page.tags
    return tuple((t.code, t.dtype, t.count, t.value, True) for t in (tags.get(c) for c in GEOTIFF_TAGS) if t)


def _geotiff_tags(path: Path) -> tuple:
    """A GeoTIFF's georeferencing tags as tifffile ``extratags``, for outputs rasterio cannot write."""
    import tifffile

    with _quiet("tifffile"), tifffile.TiffFile(path) as tif:
        return _page_geotiff_tags(tif.pages.first)


class RasterioSource(ImageSource):
    """GeoTIFF through rasterio: windowed reads, nodata, and the georeferencing kept for the output."""

    def __init__(self, path: Path):
        import rasterio

        self.path = Path(path)
        try:
            self._ds = rasterio.open(self.path)
        except Exception as exc:
            raise InputError(f"{self.path.name} is not a readable GeoTIFF: {_first_line(exc)}") from None
        ds = self._ds
        self.shape = (ds.height, ds.width, ds.count)
        self.dtype = _check_dtype(self.path, ds.dtypes[0])
        self.nodata = ds.nodata
        self.georef = {"crs": ds.crs, "transform": ds.transform, "tifftags": _geotiff_tags(self.path)}

    def close(self) -> None:
        self._ds.close()

    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        from rasterio.windows import Window as RioWindow

        return self._ds.read(window=RioWindow(col, row, width, height)).transpose(1, 2, 0)


class PillowSource(ImageSource):
    """PNG / JPEG through Pillow. These formats have no windows: the image is decoded once."""

    def __init__(self, path: Path):
        from PIL import Image

        self.path = Path(path)
        Image.MAX_IMAGE_PIXELS = None  # huge scenes are the point; the size is checked below
        try:
            with Image.open(self.path) as im:
                im = im.convert("RGB") if im.mode in ("P", "CMYK", "YCbCr", "LAB", "HSV") else im
                im.load()
                pixels = np.asarray(im)
        except Exception as exc:
            raise InputError(f"{self.path.name} is not a readable image: {_first_line(exc)}") from None
        self._pixels = pixels if pixels.ndim == 3 else pixels[..., None]
        self.shape = self._pixels.shape
        self.dtype = _check_dtype(self.path, self._pixels.dtype)

    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        return self._pixels[row:row + height, col:col + width]


class NpySource(ImageSource):
    """A ``.npy`` array (H, W) or (H, W, C), memory-mapped: only the windows read are paged in."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._array = np.load(self.path, mmap_mode="r")
        except Exception as exc:
            raise InputError(f"{self.path.name} is not a readable .npy file: {_first_line(exc)}") from None
        if self._array.ndim not in (2, 3):
            raise InputError(f"{self.path.name} has shape {self._array.shape}; expected (H, W) or (H, W, C)")
        a = self._array
        self.shape = a.shape if a.ndim == 3 else (*a.shape, 1)
        self.dtype = _check_dtype(self.path, a.dtype)

    def close(self) -> None:
        self._array = None

    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        window = np.array(self._array[row:row + height, col:col + width])
        return window if window.ndim == 3 else window[..., None]


def _is_geotiff(path: Path) -> bool:
    import tifffile

    try:
        with _quiet("tifffile"), tifffile.TiffFile(path) as tif:
            return bool(tif.pages.first.is_geotiff)
    except Exception:
        return False  # TiffSource reports the damage with its own message


_WARNED: set[Path] = set()  # files already warned about, once per process (calibration opens a file per tile)


def _warn_other_pages(path: Path) -> None:
    """Warn when a TIFF holds more images than its first (reduced-resolution overviews do not count)."""
    import tifffile

    try:
        with _quiet("tifffile"), tifffile.TiffFile(path) as tif:
            pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)]
    except Exception:
        return  # the reader reports the damage with its own message
    if len(pages) > 1 and path.resolve() not in _WARNED:
        _WARNED.add(path.resolve())
        LOG.warning(f"edgekit: warning: {path.name} holds {len(pages)} images (pages); reading page 1 only, "
                    f"the other {len(pages) - 1} are ignored")


def open_image(path: Path | str, cache_rows: int = 1024) -> ImageSource:
    """Open an image for windowed reading; the reader is chosen by suffix (GeoTIFF: rasterio).

    Raises:
        InputError: missing, unsupported, truncated or corrupt file, or unsupported pixel type.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"{path.name}: unsupported format {suffix or '(none)'}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if suffix == ".npy":
        return NpySource(path)
    if suffix in (".png", ".jpg", ".jpeg"):
        return PillowSource(path)
    _warn_other_pages(path)
    if _is_geotiff(path):
        try:
            return RasterioSource(path)
        except ImportError:
            pass  # no rasterio: tifffile reads the pixels and keeps the georeferencing tags
    return TiffSource(path, cache_rows)


def list_images(folder: Path | str, limit: int = 0) -> list[Path]:
    """The images directly inside ``folder`` by name (the first ``limit`` when > 0); an error when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist")
    found = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not found:
        raise InputError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return found[:limit] if limit > 0 else found
