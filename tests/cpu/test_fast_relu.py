"""tinyresnet/cpu/relu.py: relu's max(x, 0) and its gradient g * (out > 0), computed over the
arrays' memory as rows, block by block on every core, must equal the core's definitions
(autograd.relu_forward and relu_backward) for every way an array can be stored; where the fast
version does not apply, the installed chooser must fall back to the definition."""
import numpy as np
import pytest

from tinyresnet import autograd
from tinyresnet.cpu import relu as fast_relu
from tinyresnet.cpu import threads
from tinyresnet.cpu.rows import memory_rows
from tinyresnet.device import channels_last_zeros


@pytest.fixture(params=["one block", "a block per row"])
def blocks(request, monkeypatch):
    if request.param == "a block per row":
        monkeypatch.setattr(threads, "BLOCK_FLOATS", 1)  # many blocks: they run on threads
    return request.param


def stored_as(kind, rng):
    a = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    if kind == "channels-last":
        out = channels_last_zeros(np, a.shape, a.dtype)
        out[...] = a
        return out
    return {"C order": a, "transposed": a.transpose(3, 1, 0, 2), "strided slice": a[:, :, ::2],
            "odd size": a[:1, :1, :3, :5].copy(), "one number": np.asarray(np.float32(-2)),
            "float64": a.astype(np.float64)}[kind]


KINDS = ["C order", "channels-last", "transposed", "strided slice", "odd size", "one number", "float64"]


@pytest.mark.parametrize("kind", KINDS)
def test_relu_forward_equals_the_definition(kind, blocks, rng, installed):
    a = stored_as(kind, rng)
    got, want = autograd.relu_forward(a), autograd.relu_forward.definition(a)
    assert got.dtype == want.dtype, f"the installed relu_forward changed the dtype of a {kind} array"
    np.testing.assert_array_equal(got, want, err_msg=f"the installed relu_forward differs from "
                                                     f"np.maximum(a, 0) for a {kind} array ({blocks})")
    if fast_relu.applies(a):
        assert got.strides == a.strides, f"relu_forward must store its output like its input ({kind})"


def test_relu_forward_keeps_nan_and_never_writes_its_input():
    a = np.array([[-1.0, np.nan], [0.0, 2.5]], dtype=np.float32)
    before = a.copy()
    np.testing.assert_array_equal(fast_relu.relu_forward(a), [[0.0, np.nan], [0.0, 2.5]])
    np.testing.assert_array_equal(a, before)


def test_memory_rows_is_a_view_of_the_same_memory(rng):
    a = stored_as("channels-last", rng)
    rows = memory_rows(a)
    assert rows is not None and np.shares_memory(rows, a) and rows.size == a.size
    assert memory_rows(stored_as("strided slice", rng)) is None, "a strided slice is not one dense block"


@pytest.mark.parametrize("g_kind", ["C order", "channels-last"])
@pytest.mark.parametrize("out_kind", ["C order", "channels-last", "float64"])
def test_relu_backward_equals_the_definition(g_kind, out_kind, blocks, rng, installed):
    g, out = stored_as(g_kind, rng), autograd.relu_forward(stored_as(out_kind, rng))
    want = autograd.relu_backward.definition(g, out)
    got = autograd.relu_backward(g, out)
    assert got.dtype == want.dtype, f"relu_backward changed the dtype (g {g_kind}, out {out_kind})"
    np.testing.assert_array_equal(got, want, err_msg=f"the installed relu_backward differs from "
                                                     f"g * (out > 0) for g {g_kind}, out {out_kind} ({blocks})")
