"""Lesson 02: convolution as im2col plus one matrix product.

conv2d is checked against a slow, obviously-correct loop, its backward pass
with gradcheck, im2col/col2im against each other (col2im must be the adjoint
of im2col), the CPU's fast path (fastconv.py) against the definitions in
conv.py, and everything against PyTorch when it is installed.
"""
import numpy as np
import pytest

from tinyresnet import Tensor, gradcheck
from tinyresnet import conv, fastconv
from tinyresnet.functional import conv2d
from tinyresnet.im2col import col2im, im2col, output_size

from conftest import host

pytestmark = pytest.mark.conv


def reference_conv2d(x, w, stride, padding):
    """Cross-correlation written as loops over images, filters and output pixels."""
    n, c, h, wid = x.shape
    k, _, r, s = w.shape
    ho = (h + 2 * padding - r) // stride + 1
    wo = (wid + 2 * padding - s) // stride + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n, k, ho, wo))
    for b in range(n):
        for f in range(k):
            for i in range(ho):
                for j in range(wo):
                    patch = xpad[b, :, i * stride:i * stride + r, j * stride:j * stride + s]
                    out[b, f, i, j] = (patch * w[f]).sum()
    return out


# (N, C, H, W), (K, C, R, S), stride, padding
CONFIGS = [
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
    ((1, 1, 7, 5), (2, 1, 3, 3), 2, 0),      # non-square input, stride 2
    ((2, 3, 8, 8), (4, 3, 3, 3), 2, 1),      # the ResNet downsampling conv
    ((2, 2, 6, 6), (3, 2, 1, 1), 1, 0),      # 1x1 kernel
    ((1, 3, 5, 7), (2, 3, 5, 5), 1, 2),      # big kernel, padding 2
    ((2, 3, 6, 5), (4, 3, 3, 2), 1, 1),      # non-square kernel
    ((2, 16, 4, 4), (8, 16, 3, 3), 1, 1),    # many channels
    ((2, 3, 6, 6), (4, 3, 3, 3), 1, 0),      # no padding: the output is smaller than the input
]


def config_id(cfg):
    xs, ws, stride, padding = cfg
    return f"x{xs}-w{ws}-s{stride}-p{padding}".replace(" ", "")


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_forward_matches_loops(cfg, xp, rng):
    x_shape, w_shape, stride, padding = cfg
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out = conv2d(Tensor(xp.asarray(x)), Tensor(xp.asarray(w)), stride, padding)
    ref = reference_conv2d(x, w, stride, padding)
    assert out.shape == ref.shape, f"conv2d output shape {out.shape}, expected {ref.shape}"
    np.testing.assert_allclose(host(out), ref, rtol=1e-10, atol=1e-10,
                               err_msg=f"conv2d forward differs from the loop reference for {config_id(cfg)}")


def test_forward_accepts_any_memory_layout(xp, rng):
    """Activations are stored channel-major; a plain (N, C, H, W) array must give the same result."""
    x = rng.standard_normal((2, 3, 5, 5))
    w = xp.asarray(rng.standard_normal((4, 3, 3, 3)))
    plain = xp.ascontiguousarray(xp.asarray(x))
    channel_major = xp.ascontiguousarray(xp.asarray(x).transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    a = conv2d(Tensor(plain), Tensor(w), 1, 1)
    b = conv2d(Tensor(channel_major), Tensor(w), 1, 1)
    np.testing.assert_allclose(host(a), host(b), rtol=1e-12, atol=1e-12)


GRAD_CONFIGS = [
    ((1, 1, 5, 5), (2, 1, 3, 3), 1, 0),      # batch 1, one channel
    ((2, 3, 7, 5), (4, 3, 3, 3), 1, 1),      # non-square input
    ((2, 3, 7, 5), (4, 3, 3, 3), 2, 1),      # stride 2
    ((1, 3, 6, 6), (2, 3, 3, 3), 2, 0),      # stride 2, last row/column never reached
    ((1, 16, 3, 3), (16, 16, 3, 3), 1, 1),   # 16 channels in and out
    ((2, 2, 4, 4), (3, 2, 1, 1), 2, 0),      # 1x1 stride-2 (a projection shortcut)
]


@pytest.mark.parametrize("cfg", GRAD_CONFIGS, ids=config_id)
def test_backward(cfg, xp, rng):
    x_shape, w_shape, stride, padding = cfg
    x = xp.asarray(rng.standard_normal(x_shape))
    w = xp.asarray(rng.standard_normal(w_shape))
    gradcheck(lambda x, w: conv2d(x, w, stride, padding), x, w, max_checks=32,
              name=f"conv2d {config_id(cfg)}")


@pytest.fixture(params=["one chunk", "a chunk per image"])
def chunking(request, monkeypatch):
    """fastconv's chunks: the whole (tiny) batch in one, or one image each (then they run on threads)."""
    if request.param == "a chunk per image":
        monkeypatch.setattr(fastconv, "CHUNK_BYTES", 1)
    return request.param


@pytest.mark.parametrize("part", ["forward", "weight_grad", "input_grad"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_fast_path_equals_the_definition(cfg, part, chunking, rng):
    """fastconv (the CPU's chunked, threaded, flipped-kernel versions) must give the numbers of
    conv.py's definitions: out = cols @ w2, dw2 = colsᵀ @ g2, dx = col2im(g2 @ w2ᵀ)."""
    x_shape, w_shape, stride, padding = cfg
    k, c, r, s = w_shape
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    ho, wo = output_size(x_shape[2], r, stride, padding), output_size(x_shape[3], s, stride, padding)
    g = rng.standard_normal((x_shape[0], k, ho, wo))
    args = {"forward": (x, w, stride, padding), "weight_grad": (x, g, w_shape, stride, padding),
            "input_grad": (g, w, x_shape, stride, padding)}[part]
    fast, definition = getattr(fastconv, part), getattr(conv, f"{part}_definition")
    np.testing.assert_allclose(fast(*args), definition(*args), rtol=1e-10, atol=1e-10,
                               err_msg=f"fastconv.{part} differs from conv.{part}_definition for "
                                       f"{config_id(cfg)} ({chunking})")


@pytest.mark.parametrize("need_dx", [True, False], ids=["dx and dw", "dw only"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_fast_backward_equals_the_definitions(cfg, need_dx, chunking, rng):
    """fastconv.backward (which, at stride 1, reads both gradients off one unfolding of g) must
    give conv.py's dx = col2im(g2 @ w2ᵀ) and dw2 = colsᵀ @ g2."""
    x_shape, w_shape, stride, padding = cfg
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    ho = output_size(x_shape[2], w_shape[2], stride, padding)
    wo = output_size(x_shape[3], w_shape[3], stride, padding)
    g = rng.standard_normal((x_shape[0], w_shape[0], ho, wo))
    fast = fastconv.backward(x, g, w, stride, padding, need_dx)
    definition = conv.backward_definition(x, g, w, stride, padding, need_dx)
    for name, got, want in zip(("dx", "dw"), fast, definition):
        if want is None:
            assert got is None, f"fastconv.backward returned a {name} that was not asked for"
            continue
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10,
                                   err_msg=f"fastconv.backward's {name} differs from the definition "
                                           f"for {config_id(cfg)} ({chunking}); at stride 1 it is read "
                                           "off the unfolded g, with the kernel offsets flipped")


def test_cpu_runs_the_fast_path_and_a_gpu_the_definitions():
    assert conv.algorithm(np) == fastconv.ALGORITHM
    assert conv.algorithm(object()) == conv.DEFINITION  # any other array module (CuPy)


def test_float32_stays_float32_on_the_fast_path(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    for part, out in [("forward", fastconv.forward(x, w, 1, 1)),
                      ("weight_grad", fastconv.weight_grad(x, g, w.shape, 1, 1)),
                      ("input_grad", fastconv.input_grad(g, w, x.shape, 1, 1)),
                      ("backward's dx", fastconv.backward(x, g, w, 1, 1)[0]),
                      ("backward's dw", fastconv.backward(x, g, w, 1, 1)[1])]:
        assert out.dtype == np.float32, f"fastconv.{part} returned {out.dtype} for float32 inputs"


def test_pixels_no_window_reaches_get_zero_gradient(xp, rng):
    """6x6 input, 3x3 kernel, stride 2, no padding: windows start at 0 and 2; row/col 5 is never read."""
    x = Tensor(xp.asarray(rng.standard_normal((1, 2, 6, 6))), requires_grad=True)
    w = Tensor(xp.asarray(rng.standard_normal((3, 2, 3, 3))), requires_grad=True)
    out = conv2d(x, w, stride=2, padding=0)
    assert out.shape == (1, 3, 2, 2)
    out.backward(xp.ones(out.shape))
    dx = host(x.grad)
    assert np.all(dx[:, :, 5, :] == 0) and np.all(dx[:, :, :, 5] == 0)
    assert np.all(dx[:, :, :5, :5] != 0)


def test_no_input_gradient_needed(xp, rng):
    """The first conv sees the images, which need no gradient: only dw is computed."""
    x = Tensor(xp.asarray(rng.standard_normal((2, 3, 5, 5))))
    w = Tensor(xp.asarray(rng.standard_normal((4, 3, 3, 3))), requires_grad=True)
    conv2d(x, w, 1, 1).sum().backward()
    assert x.grad is None and w.grad is not None and w.grad.shape == (4, 3, 3, 3)


# ------------------------------------------------------------ im2col / col2im

@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_im2col_layout(cfg, rng):
    """cols[(n, i, j), (r, s, c)] is the padded input at [n, c, i*stride + r, j*stride + s]."""
    (n, c, h, w), (_, _, r, s), stride, padding = cfg
    x = rng.standard_normal((n, c, h, w))
    cols = im2col(x, (r, s), stride, padding)
    ho, wo = output_size(h, r, stride, padding), output_size(w, s, stride, padding)
    assert cols.shape == (n * ho * wo, r * s * c)
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    expected = np.empty((n, ho, wo, r, s, c))
    for ri in range(r):
        for si in range(s):
            patch = xpad[:, :, ri:ri + stride * ho:stride, si:si + stride * wo:stride]  # (n, c, ho, wo)
            expected[:, :, :, ri, si, :] = patch.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(cols, expected.reshape(cols.shape))


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_col2im_is_the_adjoint_of_im2col(cfg, xp, rng):
    """<im2col(x), c> == <x, col2im(c)> for all x, c: that is what makes col2im the right backward."""
    x_shape, (_, _, r, s), stride, padding = cfg
    x = xp.asarray(rng.standard_normal(x_shape))
    cols = im2col(x, (r, s), stride, padding)
    c = xp.asarray(rng.standard_normal(cols.shape))
    back = col2im(c, x_shape, (r, s), stride, padding)
    assert back.shape == tuple(x_shape)
    lhs, rhs = float((cols * c).sum()), float((x * back).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10), \
        f"<im2col(x), c> = {lhs} but <x, col2im(c)> = {rhs}: col2im is not the adjoint of im2col"


def test_col2im_sums_overlapping_patches():
    """With a 3x3 kernel, stride 1, padding 1, pixel (i, j) sits in as many patches as fit around it."""
    ones = np.ones((16, 9))  # one 4x4 image -> 16 patches (rows) of 3x3 kernel x 1 channel (columns)
    counts = col2im(ones, (1, 1, 4, 4), (3, 3), 1, 1)[0, 0]
    np.testing.assert_array_equal(counts, [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]])


# ------------------------------------------------------------ shape errors

@pytest.mark.parametrize("x_shape, w_shape, stride, padding, message", [
    ((2, 3, 5, 5), (4, 2, 3, 3), 1, 1, r"x has 3 channels but w expects 2"),
    ((1, 3, 2, 2), (4, 3, 3, 3), 1, 0, r"3x3 kernel does not fit a 2x2 input"),
    ((3, 5, 5), (4, 3, 3, 3), 1, 1, r"wants x: \(N, C, H, W\)"),
    ((2, 3, 5, 5), (3, 3, 3), 1, 1, r"w: \(K, C, R, S\)"),
    ((2, 3, 5, 5), (4, 3, 3, 3), 0, 1, r"stride must be >= 1"),
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, -1, r"padding >= 0"),
], ids=["channel-mismatch", "kernel-too-big", "3d-input", "3d-weight", "stride-0", "negative-padding"])
def test_shape_errors_are_readable(x_shape, w_shape, stride, padding, message):
    x, w = Tensor(np.zeros(x_shape)), Tensor(np.zeros(w_shape))
    with pytest.raises(ValueError, match=message):
        conv2d(x, w, stride, padding)


# ------------------------------------------------------------ against PyTorch

def assert_close(ours, theirs, what, rtol=1e-4):
    """float32 agreement: relative to each entry, plus an absolute slack scaled to the array."""
    scale = max(float(np.abs(theirs).max()), 1.0)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale,
                               err_msg=f"{what} differs from PyTorch")


@pytest.mark.torch
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("stride", [1, 2])
def test_matches_pytorch(stride, padding, torch, xp, rng):
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    ours_x = Tensor(xp.asarray(x), requires_grad=True)
    ours_w = Tensor(xp.asarray(w), requires_grad=True)
    out = conv2d(ours_x, ours_w, stride, padding)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(xp.asarray(g))

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tout = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=padding)
    tout.backward(torch.tensor(g))

    assert out.dtype == np.float32 and ours_x.grad.dtype == np.float32 and ours_w.grad.dtype == np.float32
    where = f"(stride {stride}, padding {padding})"
    assert_close(host(out), tout.detach().numpy(), f"conv2d output {where}")
    assert_close(host(ours_x.grad), tx.grad.numpy(), f"conv2d dx {where}")
    assert_close(host(ours_w.grad), tw.grad.numpy(), f"conv2d dw {where}")
