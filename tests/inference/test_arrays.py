"""Resume files: arrays stored compressed and read back bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from geovision.inference.writers import ARRAY_MAGIC, load_array, save_array


@pytest.mark.parametrize(("dtype", "shape"), [
    ("float32", (5, 300, 217)), ("uint8", (1, 64, 64)), ("float64", (7, 9)),
    ("int64", (0, 3)), ("bool", (33, 5)), (">f4", (4, 4))])
def test_arrays_come_back_bit_for_bit(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.random(shape) * 300).astype(dtype)
    if array.dtype.kind == "f" and array.size:
        array.flat[::7] = np.nan  # NaN payloads and infinities survive too
        array.flat[1] = -np.inf
    path = tmp_path / "a.blosc"
    save_array(path, array[..., ::-1] if array.ndim > 1 else array)  # not contiguous
    back = load_array(path)
    expected = array[..., ::-1] if array.ndim > 1 else array
    assert back.dtype == expected.dtype and back.shape == expected.shape
    assert back.tobytes() == np.ascontiguousarray(expected).tobytes()
    assert path.read_bytes().startswith(ARRAY_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["a.blosc"]  # no temporary left


def test_a_scenes_pieces_are_stored_in_less_than_half_their_bytes(tmp_path):
    probs = np.zeros((5, 512, 512), np.float32)
    probs[:, 100:300, 50:400] = np.linspace(0, 1, 350, dtype=np.float32)
    save_array(tmp_path / "p.blosc", probs)
    assert (tmp_path / "p.blosc").stat().st_size < probs.nbytes / 2


def test_arrays_past_blosc_s_limit_are_stored_raw(tmp_path, monkeypatch):
    from geovision.inference import writers

    monkeypatch.setattr(writers, "BLOSC_LIMIT", 1000)  # Blosc takes at most ~2 GiB at once
    array = np.arange(300, dtype=np.float64).reshape(3, 100)  # 2,400 bytes
    save_array(tmp_path / "big.blosc", array)
    back = load_array(tmp_path / "big.blosc")
    assert back.tobytes() == array.tobytes() and back.shape == (3, 100)
    assert (tmp_path / "big.blosc").stat().st_size > array.nbytes  # as it is


def test_only_plain_arrays_are_stored_and_other_files_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"t\.blosc: only plain numeric arrays"):
        save_array(tmp_path / "t.blosc", np.zeros(3, dtype=[("a", "f4")]))
    np.save(tmp_path / "old.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"old\.npy: not an array file of geovision's"):
        load_array(tmp_path / "old.npy")
