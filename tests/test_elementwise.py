"""elementwise.py: relu's max(x, 0), computed over the array's memory as rows, must equal the
plain xp.maximum(x, 0) for every way an array can be stored."""
import numpy as np
import pytest

from tinyresnet.device import channels_last_zeros
from tinyresnet.elementwise import memory_rows, positive_part


def stored_as(kind, rng):
    a = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    if kind == "channels-last":
        out = channels_last_zeros(np, a.shape, a.dtype)
        out[...] = a
        return out
    return {"C order": a, "transposed": a.transpose(3, 1, 0, 2), "strided slice": a[:, :, ::2],
            "odd size": a[:1, :1, :3, :5].copy(), "one number": np.asarray(np.float32(-2)),
            "float64": a.astype(np.float64), "ints": (a * 10).astype(np.int32)}[kind]


KINDS = ["C order", "channels-last", "transposed", "strided slice", "odd size", "one number",
         "float64", "ints"]


@pytest.mark.parametrize("kind", KINDS)
def test_positive_part_equals_maximum_with_zero(kind, rng):
    a = stored_as(kind, rng)
    got, want = positive_part(a), np.maximum(a, 0)
    assert got.dtype == want.dtype, f"positive_part changed the dtype of a {kind} array"
    np.testing.assert_array_equal(got, want, err_msg=f"positive_part differs from np.maximum(a, 0) "
                                                     f"for a {kind} array")
    if a.ndim and memory_rows(a) is not None:
        assert got.strides == a.strides, f"positive_part must store its output like its input ({kind})"


def test_positive_part_keeps_nan_and_never_writes_its_input(rng):
    a = np.array([[-1.0, np.nan], [0.0, 2.5]], dtype=np.float32)
    before = a.copy()
    np.testing.assert_array_equal(positive_part(a), [[0.0, np.nan], [0.0, 2.5]])
    np.testing.assert_array_equal(a, before)


def test_memory_rows_is_a_view_of_the_same_memory(rng):
    a = stored_as("channels-last", rng)
    rows = memory_rows(a)
    assert rows is not None and np.shares_memory(rows, a) and rows.size == a.size
    assert memory_rows(stored_as("strided slice", rng)) is None, "a strided slice is not one dense block"
