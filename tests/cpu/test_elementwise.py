"""elementwise.py: relu's max(x, 0) and its gradient g * (out > 0), computed over the arrays'
memory as rows, block by block on every core, must equal the plain NumPy expressions for every
way an array can be stored."""
import numpy as np
import pytest

from tinyresnet import parallel
from tinyresnet.device import channels_last_zeros
from tinyresnet.elementwise import memory_rows, positive_part, relu_grad


@pytest.fixture(params=["one block", "a block per row"])
def blocks(request, monkeypatch):
    if request.param == "a block per row":
        monkeypatch.setattr(parallel, "BLOCK_FLOATS", 1)  # many blocks: they run on threads
    return request.param


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
def test_positive_part_equals_maximum_with_zero(kind, blocks, rng):
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


@pytest.mark.parametrize("g_kind", ["C order", "channels-last"])
@pytest.mark.parametrize("out_kind", ["C order", "channels-last", "float64"])
def test_relu_grad_equals_g_where_the_output_is_positive(g_kind, out_kind, blocks, rng):
    g, out = stored_as(g_kind, rng), positive_part(stored_as(out_kind, rng))
    want = np.multiply(g, out > 0)
    got = relu_grad(g, out)
    assert got.dtype == want.dtype, f"relu_grad changed the dtype (g {g_kind}, out {out_kind})"
    np.testing.assert_array_equal(got, want, err_msg=f"relu_grad differs from g * (out > 0) for g "
                                                     f"{g_kind}, out {out_kind} ({blocks})")
