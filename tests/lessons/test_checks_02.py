"""The check cells of 02_convolution_im2col.ipynb reject wrong code, and name the slip.

For each of its exercises (my_im2col, my_col2im, conv2d_forward, conv2d_backward) the worked
solution must pass, and planted wrong versions, each a slip a learner makes, must make the
check print "✗ FAILED" with the hint that names that slip and not another one's. A check that
passed them, or blamed the wrong slip, would leave the learner with a wrong function and a
wrong idea of what is wrong with it.
"""
import numpy as np
import pytest

from checks import convolution_im2col as checks
from checks.harness import FAILED, NOT_WRITTEN, PASSED
from solutions import conv as solved_conv
from solutions import im2col as solved_im2col

from planted import rejects, verdict

pytestmark = pytest.mark.lessons



def sizes(x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    r, s = kernel
    return n, c, h, w, r, s, (h + 2 * padding - r) // stride + 1, (w + 2 * padding - s) // stride + 1


# ------------------------------------------------------------------ my_im2col

def im2col_channel_major(x, kernel, stride=1, padding=0):
    cols = solved_im2col.my_im2col(x, kernel, stride, padding)
    r, s = kernel
    return cols.reshape(-1, r, s, x.shape[1]).transpose(0, 3, 1, 2).reshape(cols.shape)


def im2col_transposed(x, kernel, stride=1, padding=0):
    return solved_im2col.my_im2col(x, kernel, stride, padding).T


def im2col_ignores_padding(x, kernel, stride=1, padding=0):
    n, c, h, w, r, s, ho, wo = sizes(x.shape, kernel, stride, padding)
    cols = np.empty((n, ho, wo, r, s, c))
    for i in range(r):
        for j in range(s):   # slices the unpadded x: a broadcast error as soon as padding > 0
            cols[:, :, :, i, j, :] = x[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride].transpose(0, 2, 3, 1)
    return cols.reshape(n * ho * wo, r * s * c)


@pytest.mark.parametrize("fn, says", [
    (im2col_channel_major, ["ordered (c, r, s)"]),
    (im2col_transposed, ["yours is the transpose"]),
    (im2col_ignores_padding, ["raised ValueError", "padding 1", "hint: im2col returns (N*Ho*Wo, R*S*C)"]),
])
def test_im2col_rejects(capsys, fn, says):
    out = rejects(capsys, checks.check_im2col, fn, says=says)
    assert "(M, K) @ (K, N)" not in out, "a shape error inside im2col gets an im2col hint"


# ------------------------------------------------------------------ my_col2im

def col2im_assigns(cols, x_shape, kernel, stride=1, padding=0):
    """= instead of +=: overlapping windows overwrite each other."""
    n, c, h, w, r, s, ho, wo = sizes(x_shape, kernel, stride, padding)
    cols = cols.reshape(n, ho, wo, r, s, c)
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    for i in range(r):
        for j in range(s):
            dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] = cols[:, :, :, i, j, :].transpose(0, 3, 1, 2)
    return dx[:, :, padding:padding + h, padding:padding + w]


def col2im_channel_major(cols, x_shape, kernel, stride=1, padding=0):
    """Reads the columns of cols as (c, r, s) instead of (r, s, c), and adds correctly."""
    n, c, h, w, r, s, ho, wo = sizes(x_shape, kernel, stride, padding)
    cols = cols.reshape(n, ho, wo, c, r, s)
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    for i in range(r):
        for j in range(s):
            dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx[:, :, padding:padding + h, padding:padding + w]


def col2im_slab_reshaped(cols, x_shape, kernel, stride=1, padding=0):
    """Adds correctly, but turns each (N, Ho, Wo, C) slab into (N, C, Ho, Wo) by reshape, not transpose:
    every pixel wrong, so the `=` hint must not be given (in x(2, 3, 5, 5) with padding 1 every pixel
    is read by several windows, and 'all single-read pixels right' holds of no pixel at all)."""
    n, c, h, w, r, s, ho, wo = sizes(x_shape, kernel, stride, padding)
    cols = cols.reshape(n, ho, wo, r, s, c)
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    for i in range(r):
        for j in range(s):
            slab = cols[:, :, :, i, j, :].reshape(n, c, ho, wo)          # the slip: reshape, not transpose
            dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += slab
    return dx[:, :, padding:padding + h, padding:padding + w]


def col2im_keeps_padding(cols, x_shape, kernel, stride=1, padding=0):
    return np.pad(solved_im2col.my_col2im(cols, x_shape, kernel, stride, padding),
                  ((0, 0), (0, 0), (padding, padding), (padding, padding)))


ASSIGN_HINT, ORDER_HINT = "you ASSIGN (=) where col2im must ADD (+=)", "you read the columns of cols in the order (c, r, s)"


@pytest.mark.parametrize("fn, says, not_says", [
    (col2im_assigns, ["not the adjoint", ASSIGN_HINT, "for x(1, 1, 4, 4)"], [ORDER_HINT]),
    (col2im_channel_major, ["not the adjoint", ORDER_HINT, "for x(2, 3, 5, 5)"], [ASSIGN_HINT, "+="]),
    (col2im_keeps_padding, ["x's shape (2, 3, 5, 5)", "padding is cut off"], []),
    (col2im_slab_reshaped, ["not the adjoint", "walk the same (n, i, j) x (r, s, c) positions"], [ASSIGN_HINT]),
])
def test_col2im_rejects_and_names_the_slip(capsys, fn, says, not_says):
    """`=` for `+=` and a wrong column order both break the adjoint; each gets its own hint."""
    rejects(capsys, checks.check_col2im, fn, says=says, not_says=not_says)


# ------------------------------------------------------------------ conv2d_forward

def forward_without_reshape(x, w, stride=1, padding=0):
    """Returns the product as it comes, (N*Ho*Wo, K)."""
    k, c, r, s = w.shape
    return solved_im2col.my_im2col(x, (r, s), stride, padding) @ w.transpose(2, 3, 1, 0).reshape(-1, k)


def forward_reshaped_straight(x, w, stride=1, padding=0):
    """reshape(N, K, Ho, Wo) of the product: the right shape, the entries scrambled."""
    n, c, h, wid, r, s, ho, wo = sizes(x.shape, w.shape[2:], stride, padding)
    return forward_without_reshape(x, w, stride, padding).reshape(n, w.shape[0], ho, wo)


def forward_kernel_channel_major(x, w, stride=1, padding=0):
    """w.reshape(K, -1).T: the filters flattened (c, r, s), against cols' (r, s, c)."""
    n, c, h, wid, r, s, ho, wo = sizes(x.shape, w.shape[2:], stride, padding)
    out2 = solved_im2col.my_im2col(x, (r, s), stride, padding) @ w.reshape(w.shape[0], -1).T
    return out2.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


def forward_axes_swapped(x, w, stride=1, padding=0):
    """transpose(0, 3, 2, 1) for (0, 3, 1, 2): Ho and Wo swapped, unseen in shape on square maps."""
    n, c, h, wid, r, s, ho, wo = sizes(x.shape, w.shape[2:], stride, padding)
    return forward_without_reshape(x, w, stride, padding).reshape(n, ho, wo, -1).transpose(0, 3, 2, 1)


def forward_images_and_filters_swapped(x, w, stride=1, padding=0):
    n, c, h, wid, r, s, ho, wo = sizes(x.shape, w.shape[2:], stride, padding)
    return forward_without_reshape(x, w, stride, padding).reshape(n, ho, wo, -1).transpose(3, 0, 1, 2)


def forward_ignores_stride(x, w, stride=1, padding=0):
    return solved_conv.conv2d_forward(x, w, 1, padding)


@pytest.mark.parametrize("fn, says", [
    (forward_without_reshape, ["(N*Ho*Wo, K)", "reshape(N, Ho, Wo, K), then transpose(0, 3, 1, 2)"]),
    (forward_reshaped_straight, ["for x(2, 3, 5, 5)", "reshaped the product straight to (N, K, Ho, Wo)"]),
    (forward_kernel_channel_major, ["(c, r, s)", "w.transpose(2, 3, 1, 0)"]),
    (forward_ignores_stride, ["x(1, 1, 7, 5) w(2, 1, 3, 3) stride 2", "the stride was ignored"]),
    (forward_axes_swapped, ["cols and w2 are right", "yours is transpose(0, 3, 2, 1)"]),
    (forward_images_and_filters_swapped, ["(K, N, Ho, Wo): N and K are swapped"]),
])
def test_conv2d_forward_rejects(capsys, fn, says):
    rejects(capsys, checks.check_conv2d_forward, fn, says=says)


def test_conv2d_forward_says_when_im2col_is_not_written(capsys):
    def my_im2col(x, kernel, stride=1, padding=0):
        raise NotImplementedError("your turn")

    def conv2d_forward(x, w, stride=1, padding=0):
        return my_im2col(x, w.shape[2:], stride, padding) @ w.reshape(w.shape[0], -1).T
    ok, out = verdict(capsys, checks.check_conv2d_forward, conv2d_forward)
    assert ok is False and NOT_WRITTEN in out and "my_im2col" in out, out


# ------------------------------------------------------------------ conv2d_backward

def backward_parts(x, w, g, stride, padding):
    """cols, w2, g2 as the solution builds them."""
    k, c, r, s = w.shape
    return (solved_im2col.my_im2col(x, (r, s), stride, padding), w.transpose(2, 3, 1, 0).reshape(-1, k),
            g.transpose(0, 2, 3, 1).reshape(-1, k))


def backward_dw_reshaped(x, w, g, stride=1, padding=0):
    """dw2 (R*S*C, K) reshaped straight to (K, C, R, S)."""
    dx, _ = solved_conv.conv2d_backward(x, w, g, stride, padding)
    cols, _, g2 = backward_parts(x, w, g, stride, padding)
    return dx, (cols.T @ g2).reshape(w.shape)


def backward_dx_assigns(x, w, g, stride=1, padding=0):
    """dx through a col2im that assigns: the overlapping windows' shares are lost."""
    _, dw = solved_conv.conv2d_backward(x, w, g, stride, padding)
    _, w2, g2 = backward_parts(x, w, g, stride, padding)
    return col2im_assigns(g2 @ w2.T, x.shape, w.shape[2:], stride, padding), dw


def backward_col2im_stride_1(x, w, g, stride=1, padding=0):
    """dx with the stride left out of the col2im call."""
    _, dw = solved_conv.conv2d_backward(x, w, g, stride, padding)
    _, w2, g2 = backward_parts(x, w, g, stride, padding)
    return solved_im2col.my_col2im(g2 @ w2.T, x.shape, w.shape[2:], 1, padding), dw


def backward_g_reshaped(x, w, g, stride=1, padding=0):
    """g.reshape(-1, K) instead of moving K last first."""
    return solved_conv.conv2d_backward(x, w, g.reshape(g.shape[0], *g.shape[2:], g.shape[1])
                                       .transpose(0, 3, 1, 2), stride, padding)


def backward_dx_kernel_channel_major(x, w, g, stride=1, padding=0):
    """dcols = g2 @ w.reshape(K, -1): the filters flattened (c, r, s), against cols' (r, s, c)."""
    _, dw = solved_conv.conv2d_backward(x, w, g, stride, padding)
    _, _, g2 = backward_parts(x, w, g, stride, padding)
    return solved_im2col.my_col2im(g2 @ w.reshape(w.shape[0], -1), x.shape, w.shape[2:], stride, padding), dw


def backward_kernel_transposed(x, w, g, stride=1, padding=0):
    """Calls col2im with the kernel (S, R): unseen while every kernel is square."""
    k, c, r, s = w.shape
    _, dw = solved_conv.conv2d_backward(x, w, g, stride, padding)
    _, w2, g2 = backward_parts(x, w, g, stride, padding)
    return solved_im2col.my_col2im(g2 @ w2.T, x.shape, (s, r), stride, padding), dw


def backward_swapped(x, w, g, stride=1, padding=0):
    dx, dw = solved_conv.conv2d_backward(x, w, g, stride, padding)
    return dw, dx


def backward_dw_averaged(x, w, g, stride=1, padding=0):
    """dw divided by the batch size: no named slip gives it, so gradcheck must catch it."""
    dx, dw = solved_conv.conv2d_backward(x, w, g, stride, padding)
    return dx, dw / x.shape[0]


@pytest.mark.parametrize("fn, says", [
    (backward_dw_reshaped, ["entries of dw are wrong", "transpose(3, 2, 0, 1)"]),
    (backward_dx_assigns, ["entries of dx are wrong", "must ADD (+=)"]),
    (backward_col2im_stride_1, ["raised ValueError", "case: x(2, 3, 7, 5) w(4, 3, 3, 3) stride 2",
                                "same kernel, stride and padding"]),
    (backward_g_reshaped, ["g.reshape(-1, K) mixes filters and pixels"]),
    (backward_dx_kernel_channel_major, ["entries of dx are wrong", "w.reshape(K, -1) flattens each filter"]),
    (backward_kernel_transposed, ["case: x(2, 3, 6, 5) w(4, 3, 3, 2)"]),
    (backward_swapped, ["returned dx of shape (2, 1, 3, 3), expected (1, 1, 5, 5)"]),
    (backward_dw_averaged, ["disagrees with central differences", "shape (4, 3, 3, 3)",
                            "0.5 × numeric", "case: x(2, 3, 7, 5)"]),
])
def test_conv2d_backward_rejects(capsys, fn, says):
    rejects(capsys, checks.check_conv2d_backward, fn, says=says)


def test_backward_check_blames_dx_or_dw_alone(capsys):
    """A wrong dx does not get dw's hint, nor the other way round."""
    out = rejects(capsys, checks.check_conv2d_backward, backward_dx_assigns)
    assert "dw" not in out.split("hint:")[-1], out
    out = rejects(capsys, checks.check_conv2d_backward, backward_dw_reshaped)
    assert "col2im" not in out.split("hint:")[-1], out


# ------------------------------------------------------------------ the worked solutions

@pytest.mark.parametrize("check, fn", [
    (checks.check_im2col, solved_im2col.my_im2col),
    (checks.check_col2im, solved_im2col.my_col2im),
    (checks.check_conv2d_forward, solved_conv.conv2d_forward),
    (checks.check_conv2d_backward, solved_conv.conv2d_backward),
], ids=["im2col", "col2im", "conv2d_forward", "conv2d_backward"])
def test_the_solutions_pass(capsys, check, fn):
    ok, out = verdict(capsys, check, fn)
    assert ok is True and out.startswith(PASSED), out


def test_the_solutions_keep_float32(rng=np.random.default_rng(0)):
    """Lesson 05 runs these on float32 activations: they must not turn them into float64."""
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out = solved_conv.conv2d_forward(x, w, 1, 1)
    dx, dw = solved_conv.conv2d_backward(x, w, np.ones_like(out), 1, 1)
    assert (out.dtype, dx.dtype, dw.dtype) == (np.float32,) * 3
