"""Overview levels computed strip by strip equal GDAL's COG driver's, to the byte."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given
from hypothesis import strategies as st

from geovision.inference.overviews import AVERAGE, MODE, Pyramid, axis_windows, overview_shapes
from tests.inference.gdal_cog import cog_levels, to_cog


def gdal_levels(tmp_path, data: np.ndarray, nodata: float, resampling: str) -> list[np.ndarray]:
    """Every level of the COG that GDAL's COG driver makes of ``data``."""
    count, h, w = data.shape
    src, cog = tmp_path / "src.tif", tmp_path / "cog.tif"
    with rasterio.open(src, "w", driver="GTiff", height=h, width=w, count=count,
                       dtype=data.dtype, nodata=nodata, crs="EPSG:32633",
                       transform=Affine(10, 0, 0, 0, -10, 0), tiled=True, blockxsize=512,
                       blockysize=512) as dst:
        dst.write(data)
    to_cog(src, cog, resampling=resampling)
    return cog_levels(cog)


def streamed(data: np.ndarray, resampling: str, nodata: float, seed: int,
             threads: int = 1) -> list[np.ndarray]:
    """The overview levels of ``data`` fed to a :class:`Pyramid` in strips of random height."""
    pyramid = Pyramid(data.shape[1], data.shape[2], 512, resampling, nodata, threads)
    parts: list[list[np.ndarray]] = [[] for _ in pyramid.shapes]
    rng = np.random.default_rng(seed)
    row = 0
    while row < data.shape[1]:
        n = int(rng.integers(1, 600))
        for k, rows in enumerate(pyramid.push(data[:, row:row + n])):
            parts[k].append(rows)
        row += n
    assert all(level.done for level in pyramid.levels)
    return [np.concatenate(p, axis=1) for p in parts]


def scene(kind: str, shape: tuple[int, int], seed: int) -> tuple[np.ndarray, float]:
    """Classes full of ties, or probabilities; with nodata blocks and a nodata line."""
    rng = np.random.default_rng(seed)
    h, w = shape
    if kind.startswith("classes"):
        data, nodata = rng.integers(0, 4, (1, h, w)).astype(np.uint8), 255.0
    elif kind == "uint8":
        data, nodata = rng.integers(0, 255, (3, h, w)).astype(np.uint8), 255.0
    elif kind.startswith("uint8 nodata "):  # averages of valid pixels that round to nodata
        nodata = float(kind.split()[2])
        data = (nodata + rng.integers(-2, 3, (2, h, w))).clip(0, 255).astype(np.uint8)
    else:
        data, nodata = rng.random((2, h, w)).astype(np.float32), float("nan")
    if kind.endswith(" dense"):  # no nodata pixel (the common case inside a scene)
        if kind.startswith("uint8 nodata "):  # but averages equal to nodata
            data = (nodata + rng.choice([-1, 1], data.shape)).astype(np.uint8)
        assert not (data == data.dtype.type(nodata)).any()
        return data, nodata
    data[:, :h // 3, :w // 4] = nodata
    data[:, h // 2, :] = nodata
    data[:, :, w // 2 + 1::7] = np.where(rng.random(data[:, :, w // 2 + 1::7].shape) < 0.5,
                                         nodata, data[:, :, w // 2 + 1::7])
    return data, nodata


@pytest.mark.parametrize("shape", [(1100, 1030), (1025, 777), (515, 2049), (3, 1100)])
@pytest.mark.parametrize(("kind", "resampling"), [("classes", MODE), ("uint8", AVERAGE),
                                                  ("float32", AVERAGE),
                                                  ("uint8 nodata 0", AVERAGE),
                                                  ("uint8 nodata 100", AVERAGE),
                                                  ("classes dense", MODE),
                                                  ("uint8 nodata 100 dense", AVERAGE)])
def test_streamed_levels_are_gdals_to_the_byte(tmp_path, shape, kind, resampling):
    data, nodata = scene(kind, shape, seed=sum(shape))
    ref = gdal_levels(tmp_path, data, nodata, resampling)
    mine = streamed(data, resampling, nodata, seed=1)
    assert [r.shape[1:] for r in ref[1:]] == overview_shapes(*shape, 512)
    assert len(mine) == len(ref) - 1 >= 1
    for a, b in zip(mine, ref[1:], strict=True):
        # bytes, so that NaN == NaN and -0.0 != 0.0
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(("shape", "levels"), [
    ((512, 512), []), ((300, 220), []), ((513, 513), [(256, 256)]),
    ((4097, 4097), [(2048, 2048), (1024, 1024), (512, 512)]),
    ((5000, 300), [(2500, 150), (1250, 75), (625, 37), (312, 18)]),
    ((3, 1100), [(1, 550), (1, 275)]),
])
def test_levels_halve_rounding_down_until_one_tile(shape, levels):
    assert overview_shapes(*shape, 512) == levels


@given(st.integers(1, 3000).flatmap(lambda dst: st.tuples(st.just(dst),
                                                          st.integers(dst, 3 * dst))))
def test_windows_cover_the_source_in_order(sizes):
    dst, src = sizes
    win = axis_windows(src, dst)
    assert win.start[0] == 0 and win.stop[-1] == src
    assert (win.stop > win.start).all() and (np.diff(win.start) >= 0).all()
    assert (win.start[1:] <= win.stop[:-1]).all()  # no source pixel left out
    assert ((win.first > 0) & (win.first <= 1 + 1e-9)).all()
    if src == 2 * dst:
        np.testing.assert_array_equal(win.start, 2 * np.arange(dst))
        assert (win.stop - win.start == 2).all() and (win.first == 1).all()


def test_mode_keeps_the_value_that_first_reaches_the_top_count():
    # 2 x 2 windows, row-major: [a, b, b, a] -> b reaches 2 first; [a, b, a, b] -> a
    src = np.array([[[1, 2, 1, 2], [2, 1, 1, 2]]], dtype=np.uint8)
    pyramid = Pyramid(2, 4, 1, MODE, 255.0)
    [level, *_] = pyramid.push(src)
    np.testing.assert_array_equal(level, [[[2, 1]]])


def first_to_top_count(window: list[int], nodata: int) -> int:
    """MODE of one window by the rule, pixel by pixel: the first value to reach the top count."""
    counts: dict[int, int] = {}
    best, top = nodata, 0
    for v in window:
        if v == nodata:
            continue
        counts[v] = counts.get(v, 0) + 1
        if counts[v] > top:
            best, top = v, counts[v]
    return best


def test_mode_of_every_2x2_window_follows_the_rule():
    # every window of values {0, 1, 2} and nodata: ties, repeats, nodata anywhere
    windows = np.array(np.meshgrid(*[[0, 1, 2, 255]] * 4, indexing="ij")).reshape(4, -1).T
    src = np.zeros((1, 2, 2 * len(windows)), dtype=np.uint8)
    src[0, 0, 0::2], src[0, 0, 1::2] = windows[:, 0], windows[:, 1]
    src[0, 1, 0::2], src[0, 1, 1::2] = windows[:, 2], windows[:, 3]
    [level, *_] = Pyramid(2, src.shape[2], 1, MODE, 255.0).push(src)
    assert level[0, 0].tolist() == [first_to_top_count(list(w), 255) for w in windows]
    # and where no window holds nodata (the strip is taken in one piece)
    dense = windows[(windows != 255).all(1)]
    [level, *_] = Pyramid(2, 2 * len(dense), 1, MODE, 255.0).push(
        src[:, :, np.repeat((windows != 255).all(1), 2)])
    assert level[0, 0].tolist() == [first_to_top_count(list(w), 255) for w in dense]


@pytest.mark.parametrize(("kind", "resampling"), [("uint8", AVERAGE), ("float32", AVERAGE)])
def test_levels_computed_by_band_halves_on_two_threads_are_the_same(monkeypatch, kind,
                                                                     resampling):
    from geovision.inference import overviews

    data, nodata = scene(kind, (1100, 1030), seed=3)
    data = np.concatenate([data, data[::-1]])  # 4 or 6 bands: halves of 2 or 3
    whole = streamed(data, resampling, nodata, seed=2)
    monkeypatch.setattr(overviews, "SPLIT_PIXELS", 1)
    monkeypatch.setattr(overviews, "_second", None)
    halves = streamed(data, resampling, nodata, seed=2, threads=2)
    assert [a.tobytes() for a in halves] == [a.tobytes() for a in whole]
    assert overviews._second is not None  # the second thread did take part
