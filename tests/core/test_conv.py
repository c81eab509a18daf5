"""Lesson 02: convolution as im2col plus one matrix product.

conv2d is checked against a slow, obviously-correct loop, its backward pass
with gradcheck, im2col/col2im against each other (col2im must be the adjoint
of im2col), and everything against PyTorch when it is installed. The CPU speed
wing's versions are held equal to these definitions in tests/cpu/test_fast_conv.py.
"""
import numpy as np
import pytest

from tinyresnet import Tensor, gradcheck
from tinyresnet.functional import conv2d
from tinyresnet.im2col import col2im, im2col, output_size

from conftest import host
from conv_shapes import CONFIGS, GRAD_CONFIGS, config_id

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


@pytest.mark.parametrize("cfg", GRAD_CONFIGS, ids=config_id)
def test_backward(cfg, xp, rng):
    x_shape, w_shape, stride, padding = cfg
    x = xp.asarray(rng.standard_normal(x_shape))
    w = xp.asarray(rng.standard_normal(w_shape))
    gradcheck(lambda x, w: conv2d(x, w, stride, padding), x, w, max_checks=32,
              name=f"conv2d {config_id(cfg)}")


def test_pixels_no_window_reaches_get_zero_gradient(xp, rng):
    """6x6 input, 3x3 kernel, stride 2, no padding: windows start at 0 and 2; row/col 5 is never read."""
    x = Tensor(xp.asarray(rng.standard_normal((1, 2, 6, 6))), requires_grad=True)
    w = Tensor(xp.asarray(rng.standard_normal((3, 2, 3, 3))), requires_grad=True)
    out = conv2d(x, w, stride=2, padding=0)
    assert out.shape == (1, 3, 2, 2)
    out.backward(xp.ones(out.shape))
    dx = host(x.grad)
    assert np.all(dx[:, :, 5, :] == 0) and np.all(dx[:, :, :, 5] == 0), (
        f"with stride 2 no window reads row or column 5, so their gradient must stay 0; got row 5 "
        f"{dx[0, 0, 5]}: col2im scattered a patch to the wrong place (stride ignored?)")
    assert np.all(dx[:, :, :5, :5] != 0), (
        "every pixel in rows/columns 0-4 is read by some window, so each must get a gradient: "
        f"zeros at {np.argwhere(dx[0, 0, :5, :5] == 0).tolist()} (patches placed one stride off?)")


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
    np.testing.assert_array_equal(cols, expected.reshape(cols.shape), err_msg=(
        f"{config_id(cfg)}: im2col's rows are (n, i, j), one per output pixel, and its columns (r, s, c), "
        "kernel row, kernel column, then channel; channel-major columns (c, r, s) are the usual slip"))


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
    np.testing.assert_array_equal(counts, [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]], err_msg=(
        "col2im of all-ones patches counts how many 3x3 windows cover each pixel (4 at a corner, 9 "
        "inside): col2im must ADD (+=) overlapping patches, not overwrite them"))


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
