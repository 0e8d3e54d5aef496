import numpy as np
import pytest

import tensorbridge as tb
from conftest import bits, np_astype


def test_batch_of_images_to_float32():
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for _ in range(16)]
    t = tb.stack(imgs, dtype=tb.float32)
    assert t.shape == (16, 224, 224, 3) and t.dtype == tb.float32
    assert bits(t.numpy()) == bits(np.stack(imgs).astype(np.float32))


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_axes_and_layouts_match_numpy(axis):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    items = [base[:, ::2][:2], np.asfortranarray(base[:2, :3]), base[2:, 3:][::-1], tb.convert_to_tensor(base[:2, :3] * 2)]
    arrays = [np.asarray(i) for i in items]
    got = tb.stack(items, axis=axis, dtype="float16")
    assert bits(got.numpy()) == bits(np_astype(np.stack(arrays, axis=axis), "float16"))


def test_mismatched_shapes_name_position_and_shapes():
    with pytest.raises(ValueError, match=r"item 2.*\(2, 3\)|item 2.*\[2, 3\]") as e:
        tb.stack([np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 3))])
    assert "[2, 2]" in str(e.value) and "[2, 3]" in str(e.value)
    with pytest.raises(IndexError):
        tb.stack([np.zeros(2)], axis=3)
    with pytest.raises(TypeError, match="float64.*int8"):
        tb.stack([np.zeros(2)], dtype="int8", casting="safe")
