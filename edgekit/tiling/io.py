"""Image readers that read window by window, and writers that take rows in order.

Readers: tifffile for TIFF / BigTIFF (tiled or striped: only the segments a window touches are
read and decoded, through tifffile's own decoder), rasterio for GeoTIFF (windows and
georeferencing), Pillow for PNG / JPEG, ``np.load(mmap_mode='r')`` for ``.npy``.
Writers: tiled (Big)TIFF through tifffile, GeoTIFF through rasterio, PNG through Pillow.
"""
from __future__ import annotations

__all__ = [
    "ImageSource",
    "open_image",
    "list_images",
    "IMAGE_SUFFIXES",
    "SUPPORTED_DTYPES",
    "RowWriter",
    "open_writer",
    "WRITE_SUFFIXES",
]

import logging
import os
import queue
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from edgekit.errors import InputError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy")
WRITE_SUFFIXES = (".tif", ".tiff", ".png")
SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "float16", "float32", "float64")
PNG_MAX_PIXELS = 1 << 28  # PNG is written whole by Pillow: keep it to images that fit easily


class ImageSource(ABC):
    """An open image: ``shape`` (H, W, C), ``dtype``, ``nodata`` (or None), windowed ``read``."""

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    nodata: float | None = None
    georef: dict | None = None  # {"crs": ..., "transform": ...} when the file is georeferenced

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
        self.georef = {"crs": ds.crs, "transform": ds.transform}

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
    if _is_geotiff(path):
        try:
            return RasterioSource(path)
        except ImportError:
            pass  # no rasterio: pixels still read, georeferencing not kept
    return TiffSource(path, cache_rows)


def list_images(folder: Path) -> list[Path]:
    """The images directly inside ``folder``, by name; an error when there are none."""
    found = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise InputError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return found



class RowWriter(ABC):
    """Takes an output's rows in order, top to bottom, and writes them as they come.

    A context manager: leaving it normally finishes the file; leaving it on an exception
    (Ctrl-C included) abandons it (the caller's temporary file is then removed).
    """

    def __init__(self, path: Path, height: int, width: int, bands: int, dtype, nodata: float | None = None):
        self.path, self.height, self.width, self.bands = Path(path), height, width, bands
        self.dtype, self.nodata = np.dtype(dtype), nodata
        self.rows_written = 0

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows``: (h, width) or (h, width, bands)."""
        rows = rows.reshape(rows.shape[0], self.width, self.bands).astype(self.dtype, copy=False)
        if self.rows_written + rows.shape[0] > self.height:
            raise ValueError(f"{self.path.name}: more than {self.height} rows written")
        self._write(rows)
        self.rows_written += rows.shape[0]

    def close(self) -> None:
        if self.rows_written != self.height:
            raise ValueError(f"{self.path.name}: {self.rows_written} of {self.height} rows written")
        self._close()

    @abstractmethod
    def _write(self, rows: np.ndarray) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    def abort(self) -> None:
        """Stop without finishing; the file is left for the caller to delete."""


class _Abort(Exception):
    pass


class TiffRowWriter(RowWriter):
    """Tiled, deflate-compressed (Big)TIFF through tifffile, fed block row by block row.

    tifffile pulls tiles from an iterator; a thread runs that pull so rows can be pushed as they
    are finished. Memory: a few block rows (``block`` x width), whatever the height.
    """

    block = 128

    def __init__(self, path: Path, height: int, width: int, bands: int, dtype, nodata: float | None = None):
        super().__init__(path, height, width, bands, dtype, nodata)
        self._pending: list[np.ndarray] = []
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tiff-writer", daemon=True)
        self._thread.start()

    def _tiles(self):
        b, padded_w = self.block, -(-self.width // self.block) * self.block
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item is _Abort:
                raise _Abort()
            for c in range(0, padded_w, b):
                tile = item[:, c:c + b]
                yield tile[..., 0] if self.bands == 1 else tile

    def _run(self) -> None:
        import tifffile

        size = self.height * self.width * self.bands * self.dtype.itemsize
        extra = [(42113, "s", 0, f"{self.nodata:g}", True)] if self.nodata is not None else []
        layout = {"shape": (self.height, self.width)}
        if self.bands > 1:
            layout = {"shape": (self.height, self.width, self.bands), "planarconfig": "contig"}
        try:
            tifffile.imwrite(
                self.path, data=self._tiles(), dtype=self.dtype, tile=(self.block, self.block),
                photometric="minisblack", **layout,
                compression="zlib", compressionargs={"level": 1}, bigtiff=size > 2**31 - 2**25,
                extratags=extra, metadata=None,
            )
        except _Abort:
            return
        except BaseException as exc:  # handed to the producer thread in _push / _close
            self._error = exc
            while True:  # drain until the producer's last word, so it never blocks
                item = self._queue.get()
                if item is None or item is _Abort:
                    return

    def _push(self, item) -> None:
        while self._thread.is_alive():
            if self._error is not None and item is not _Abort:
                self._raise()
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        if self._error is not None and item is not _Abort:
            self._raise()

    def _raise(self) -> None:
        err = self._error
        if isinstance(err, OSError):
            raise InputError(f"cannot write {self.path.name}: {_first_line(err)}") from None
        raise RuntimeError(f"TIFF writer failed: {err!r}") from err

    def _flush(self, final: bool) -> None:
        b = self.block
        buffered = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        full = buffered.shape[0] // b * b
        blocks = [buffered[i:i + b] for i in range(0, full, b)]
        rest = buffered[full:]
        if final and rest.shape[0]:
            blocks.append(rest)
            rest = rest[:0]
        self._pending = [rest] if rest.shape[0] else []
        padded_w = -(-self.width // b) * b
        for blk in blocks:
            out = np.zeros((b, padded_w, self.bands), self.dtype)
            out[:blk.shape[0], :self.width] = blk
            self._push(out)

    def _write(self, rows: np.ndarray) -> None:
        self._pending.append(rows)
        if sum(p.shape[0] for p in self._pending) >= self.block:
            self._flush(final=False)

    def _close(self) -> None:
        if self._pending:
            self._flush(final=True)
        self._push(None)
        self._thread.join()
        if self._error is not None:
            self._raise()

    def abort(self) -> None:
        self._push(_Abort)
        self._thread.join(timeout=10)


class GeoTiffRowWriter(RowWriter):
    """Tiled GeoTIFF through rasterio with the source's CRS and transform; GDAL's cache kept small."""

    def __init__(self, path: Path, height: int, width: int, bands: int, dtype, georef: dict, nodata: float | None = None):
        import rasterio

        super().__init__(path, height, width, bands, dtype, nodata)
        self._env = rasterio.Env(GDAL_CACHEMAX=64)
        self._env.__enter__()
        try:
            self._ds = rasterio.open(
                self.path, "w", driver="GTiff", height=height, width=width, count=bands, dtype=self.dtype.name,
                crs=georef.get("crs"), transform=georef.get("transform"), nodata=nodata, tiled=True,
                blockxsize=256, blockysize=256, compress="deflate", BIGTIFF="IF_SAFER",
            )
        except Exception as exc:
            self._env.__exit__(None, None, None)
            raise InputError(f"cannot write {self.path.name}: {_first_line(exc)}") from None

    def _write(self, rows: np.ndarray) -> None:
        from rasterio.windows import Window as RioWindow

        window = RioWindow(0, self.rows_written, self.width, rows.shape[0])
        self._ds.write(np.ascontiguousarray(rows.transpose(2, 0, 1)), window=window)

    def _close(self) -> None:
        self._ds.close()
        self._env.__exit__(None, None, None)

    def abort(self) -> None:
        self._ds.close()
        self._env.__exit__(None, None, None)


class PngRowWriter(RowWriter):
    """PNG through Pillow. Pillow encodes a whole image, so rows wait in a memory-mapped scratch file."""

    def __init__(self, path: Path, height: int, width: int, bands: int, dtype, nodata: float | None = None):
        super().__init__(path, height, width, bands, dtype, nodata)
        if height * width > PNG_MAX_PIXELS:
            raise InputError(
                f"{self.path.name}: PNG output is limited to {PNG_MAX_PIXELS >> 20} Mpx "
                f"({height}x{width} asked); write a tiled .tif instead"
            )
        if self.dtype.name not in ("uint8", "uint16") or bands not in (1, 3, 4):
            raise InputError(f"{self.path.name}: PNG holds 1, 3 or 4 bands of uint8/uint16; use .tif")
        self._scratch = self.path.with_name(f".{self.path.name}.rows.npy")
        self._rows = np.lib.format.open_memmap(self._scratch, "w+", self.dtype, (height, width, bands))

    def _write(self, rows: np.ndarray) -> None:
        self._rows[self.rows_written:self.rows_written + rows.shape[0]] = rows

    def _close(self) -> None:
        from PIL import Image

        try:
            pixels = np.asarray(self._rows)
            Image.fromarray(pixels[..., 0] if self.bands == 1 else pixels).save(self.path, format="PNG")
        finally:
            self.abort()

    def abort(self) -> None:
        self._rows = None
        self._scratch.unlink(missing_ok=True)


def open_writer(path: Path, final_suffix: str, height: int, width: int, bands: int, dtype,
                georef: dict | None = None, nodata: float | None = None) -> RowWriter:
    """A row writer for ``path`` in the format ``final_suffix`` names (``.tif``/``.tiff``/``.png``).

    A georeferenced ``.tif`` is written with rasterio (CRS and transform kept), others with tifffile.
    """
    suffix = final_suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise InputError(f"cannot write {suffix or 'files without a suffix'}; use one of {', '.join(WRITE_SUFFIXES)}")
    if suffix == ".png":
        return PngRowWriter(path, height, width, bands, dtype, nodata)
    if georef is not None:
        try:
            return GeoTiffRowWriter(path, height, width, bands, dtype, georef, nodata)
        except ImportError:
            pass
    return TiffRowWriter(path, height, width, bands, dtype, nodata)
