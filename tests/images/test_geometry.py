"""Tile geometry, without images: coverage, full-size edge tiles, and weights that sum to one."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import ConfigError
from edgekit.images.geometry import BLENDS, TileLayout, axis_starts, edge_ramp, tile_grid


@pytest.mark.parametrize("length,tile,overlap", [(1000, 256, 32), (257, 256, 0), (513, 64, 63), (64, 64, 8), (700, 100, 30)])
def test_axis_starts_cover_with_full_tiles_inside(length, tile, overlap):
    starts = axis_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == length
    assert all(0 <= s and s + tile <= length for s in starts)
    gaps = np.diff(starts)
    assert (gaps > 0).all() and (gaps <= tile - overlap).all()  # shared pixels >= overlap


def test_image_smaller_than_tile_gets_one_clipped_window():
    assert tile_grid(40, 50, 64, 64, 16) == [tile_grid(40, 50, 64, 64, 16)[0]]
    win = tile_grid(40, 50, 64, 64, 16)[0]
    assert (win.row, win.col, win.height, win.width) == (0, 0, 40, 50)


def test_grid_is_row_major_and_covers_every_pixel():
    windows = tile_grid(300, 410, 64, 64, 16)
    assert windows == sorted(windows)
    hits = np.zeros((300, 410), int)
    for w in windows:
        assert (w.height, w.width) == (64, 64)
        hits[w.row:w.bottom, w.col:w.right] += 1
    assert hits.min() >= 1


@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize("shape,overlap", [((300, 410), 16), ((64, 200), 40), ((333, 97), 63), ((500, 500), 0)])
def test_weights_sum_to_one_everywhere(blend, shape, overlap):
    layout = TileLayout(*shape, 64, 64, overlap, blend)
    weigh = layout.weigher()
    total = np.zeros(shape)
    for w in layout.windows():
        total[w.row:w.bottom, w.col:w.right] += weigh(w)
    if overlap <= 32:  # at most two tiles share a pixel along an axis: an exact partition of unity
        np.testing.assert_allclose(total, 1.0, atol=1e-5)
    assert total.min() > 0


@pytest.mark.parametrize("blend", ["gaussian", "linear"])
def test_weights_zero_near_shared_edges_and_one_on_image_border(blend):
    layout = TileLayout(200, 200, 64, 64, 16, blend)
    weigh = layout.weigher()
    first, second = list(layout.windows())[:2]
    w0, w1 = weigh(first), weigh(second)
    shared = first.right - second.col
    assert (w0[:, -(shared // 4):] == 0).all() and (w1[:, : shared // 4] == 0).all()
    assert (w0[:40, 0] == 1).all() and (w0[0, :40] == 1).all()  # image border: untapered


def test_ramps_are_monotone_and_complementary():
    for blend in BLENDS:
        for shared in (1, 3, 16, 17, 64):
            r = edge_ramp(shared, blend)
            assert (np.diff(r) >= 0).all()
            np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-6)


def test_bad_settings_name_the_choices():
    with pytest.raises(ConfigError, match="overlap"):
        axis_starts(100, 64, 64)
    with pytest.raises(ConfigError, match="gaussian, linear, crop"):
        edge_ramp(8, "median")
