"""Lesson 02 (02_convolution_im2col.ipynb): im2col, its adjoint col2im, and the conv2d they make.

The learner's functions are compared entry by entry with tinyresnet.im2col, and the pair is
turned into a conv2d whose backward pass the engine derives (col2im is im2col's backward),
gradchecked on the shapes of tests/test_conv.py.
"""
import numpy as np

from tinyresnet import Tensor, gradcheck
from tinyresnet.conv import conv2d as tinyresnet_conv2d
from tinyresnet.im2col import col2im, im2col, output_size

from .harness import Mismatch, case, check

# x shape (N, C, H, W), kernel (R, S), stride, padding
IM2COL_CONFIGS = [
    ((1, 1, 4, 4), (3, 3), 1, 0),    # the smallest case: one image, one channel
    ((2, 3, 5, 5), (3, 3), 1, 1),    # ResNet's 3x3 conv, "same" padding
    ((1, 2, 7, 5), (3, 3), 2, 0),    # non-square input, stride 2
    ((2, 3, 8, 8), (3, 3), 2, 1),    # ResNet's downsampling conv
    ((2, 2, 6, 6), (1, 1), 2, 0),    # 1x1, stride 2 (a projection shortcut)
    ((2, 3, 6, 5), (3, 2), 1, 1),    # non-square kernel
]
# the conv2d gradient checks of tests/test_conv.py: x shape, w shape, stride, padding
CONV_GRAD_CONFIGS = [
    ((1, 1, 5, 5), (2, 1, 3, 3), 1, 0),
    ((2, 3, 7, 5), (4, 3, 3, 3), 1, 1),
    ((2, 3, 7, 5), (4, 3, 3, 3), 2, 1),
    ((1, 3, 6, 6), (2, 3, 3, 3), 2, 0),
    ((1, 16, 3, 3), (16, 16, 3, 3), 1, 1),
    ((2, 2, 4, 4), (3, 2, 1, 1), 2, 0),
]

SHAPE_HINTS = {
    "my_im2col": "im2col returns (N*Ho*Wo, R*S*C) with Ho = (H + 2*padding - R) // stride + 1: pad only "
                 "H and W (axes 2 and 3); for each kernel offset (r, s) the slice "
                 "x_padded[:, :, r:r + stride*Ho:stride, s:s + stride*Wo:stride] is (N, C, Ho, Wo), and it "
                 "goes to position [:, :, :, r, s, :] of an (N, Ho, Wo, R, S, C) array as (N, Ho, Wo, C).",
    "my_col2im": "col2im gets cols (N*Ho*Wo, R*S*C): reshape it to (N, Ho, Wo, R, S, C); dx_padded is "
                 "(N, C, H + 2*padding, W + 2*padding), and each slab cols[:, :, :, r, s, :] (N, Ho, Wo, C) "
                 "is added, as (N, C, Ho, Wo), at x_padded[:, :, r:r + stride*Ho:stride, s:s + stride*Wo:stride].",
}


def config(x_shape, kernel, stride, padding):
    return f"x{x_shape} kernel {kernel} stride {stride} padding {padding}"


def cols_shape(x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    r, s = kernel
    return n * output_size(h, r, stride, padding) * output_size(w, s, stride, padding), r * s * c


def _row_col_names(x_shape, kernel, stride, padding, row, col):
    """(n, i, j) of a row and (r, s, c) of a column of cols."""
    n, c, h, w = x_shape
    r, s = kernel
    ho, wo = output_size(h, r, stride, padding), output_size(w, s, stride, padding)
    return np.unravel_index(row, (n, ho, wo)), np.unravel_index(col, (r, s, c))


def _channel_major_columns(cols, x_shape, kernel):
    """cols with its columns reordered (c, r, s) instead of (r, s, c): a common slip."""
    r, s = kernel
    return cols.reshape(-1, r, s, x_shape[1]).transpose(0, 3, 1, 2).reshape(cols.shape)


@check("my_im2col", shape_hint=SHAPE_HINTS)
def check_im2col(my_im2col):
    rng = np.random.default_rng(0)
    for x_shape, kernel, stride, padding in IM2COL_CONFIGS:
        where = config(x_shape, kernel, stride, padding)
        x = rng.standard_normal(x_shape)
        expected = im2col(x, kernel, stride, padding)
        with case(where):
            mine = np.asarray(my_im2col(x.copy(), kernel, stride, padding))
        if mine.shape != expected.shape:
            hint = ("hint: yours is the transpose; put one patch per ROW."
                    if mine.shape == expected.shape[::-1] else
                    "hint: Ho = (H + 2*padding - R) // stride + 1, and the same for Wo.")
            raise Mismatch(f"for {where} the unfolded matrix has shape {mine.shape}, expected "
                           f"{expected.shape} = (N*Ho*Wo, R*S*C):\none row per output pixel "
                           f"(n, i, j), one column per (r, s, c).\n{hint}")
        if not np.allclose(mine, expected, rtol=1e-12, atol=1e-12) and np.allclose(
                mine, _channel_major_columns(expected, x_shape, kernel), rtol=1e-12, atol=1e-12):
            raise Mismatch(f"for {where} every row holds the right patch, but its columns are ordered "
                           "(c, r, s).\nhint: order them (r, s, c), channel fastest: build an array of "
                           "shape (N, Ho, Wo, R, S, C) and reshape it.")
        wrong = np.argwhere(~np.isclose(mine, expected, rtol=1e-12, atol=1e-12))
        if len(wrong):
            row, col = wrong[0]
            (n, i, j), (r, s, c) = _row_col_names(x_shape, kernel, stride, padding, row, col)
            hh, ww = i * stride + r - padding, j * stride + s - padding
            source = (f"x[{n}, {c}, {hh}, {ww}]" if 0 <= hh < x_shape[2] and 0 <= ww < x_shape[3]
                      else "0, a padding pixel")
            raise Mismatch(
                f"for {where}, {len(wrong)} of {mine.size} entries are wrong; the first is\n"
                f"  cols[{row}, {col}], i.e. row (n, i, j) = ({n}, {i}, {j}), column (r, s, c) = ({r}, {s}, {c})\n"
                f"  yours {mine[row, col]:.6g}, expected {expected[row, col]:.6g} = {source}\n"
                "hint: entry [(n, i, j), (r, s, c)] is x_padded[n, c, i*stride + r, j*stride + s]; "
                "rows are ordered n, then i, then j; columns r, then s, then c.")
    return f"matches tinyresnet.im2col.im2col on {len(IM2COL_CONFIGS)} shapes (stride 1/2, padding 0/1, non-square)"


@check("my_col2im", shape_hint=SHAPE_HINTS)
def check_col2im(my_col2im):
    rng = np.random.default_rng(1)
    for x_shape, kernel, stride, padding in IM2COL_CONFIGS:
        where = config(x_shape, kernel, stride, padding)
        cols = rng.standard_normal(cols_shape(x_shape, kernel, stride, padding))
        x = rng.standard_normal(x_shape)
        expected = col2im(cols, x_shape, kernel, stride, padding)
        with case(where):
            mine = np.asarray(my_col2im(cols.copy(), x_shape, kernel, stride, padding))
        if mine.shape != tuple(x_shape):
            raise Mismatch(f"for {where} col2im returned shape {mine.shape}; it must give back x's "
                           f"shape {tuple(x_shape)} (the padding is cut off again at the end).")
        lhs, rhs = float((im2col(x, kernel, stride, padding) * cols).sum()), float((x * mine).sum())
        wrong = np.argwhere(~np.isclose(mine, expected, rtol=1e-10, atol=1e-10))
        if len(wrong):
            n, c, h, w = wrong[0]
            copies = col2im(np.ones_like(cols), x_shape, kernel, stride, padding)[n, c, h, w]
            raise Mismatch(
                f"for {where} col2im is not the adjoint of im2col:\n"
                f"  <im2col(x), cols> = {lhs:.6g}   but   <x, col2im(cols)> = {rhs:.6g}\n"
                f"{len(wrong)} of {mine.size} pixels are wrong; the first is dx[{n}, {c}, {h}, {w}]:\n"
                f"  yours {mine[n, c, h, w]:.6g}, expected {expected[n, c, h, w]:.6g}, the sum of the "
                f"{copies:.0f} entries of cols that im2col copied from this pixel\n"
                "hint: walk the same (n, i, j) x (r, s, c) positions as im2col and ADD (+=) each entry "
                "back into x_padded[n, c, i*stride + r, j*stride + s]; overlapping windows must sum.")
    return (f"matches tinyresnet.im2col.col2im on {len(IM2COL_CONFIGS)} shapes, "
            "so <im2col(x), c> = <x, col2im(c)> holds")


def unfold_op(my_im2col, my_col2im, kernel, stride, padding):
    """im2col as a Tensor op: the forward is your im2col, the backward your col2im (its adjoint)."""
    def unfold(x):
        cols = np.asarray(my_im2col(x.data, kernel, stride, padding))          # (N*Ho*Wo, R*S*C)

        def backward(g):                                                        # g: like cols
            return (np.asarray(my_col2im(g, x.shape, kernel, stride, padding)),)  # (N, C, H, W)
        return Tensor.from_op(cols, (x,), backward, "im2col")
    return unfold


def conv2d_from(my_im2col, my_col2im):
    """conv2d written as the lesson writes it, out = im2col(x) @ w2, on top of your pair.

    The engine differentiates the product, the reshapes and the transposes; im2col's own
    backward is your col2im, so a correct gradient means your pair is right.
    """
    def conv2d(x, w, stride=1, padding=0):
        n, c, h, wid = x.shape
        k, _, r, s = w.shape
        ho, wo = output_size(h, r, stride, padding), output_size(wid, s, stride, padding)
        cols = unfold_op(my_im2col, my_col2im, (r, s), stride, padding)(x)   # (N*Ho*Wo, R*S*C)
        w2 = w.transpose(2, 3, 1, 0).reshape(r * s * c, k)                     # (R*S*C, K)
        return (cols @ w2).reshape(n, ho, wo, k).transpose(0, 3, 1, 2)         # (N, K, Ho, Wo)
    return conv2d


PAIR_HINT = ("run the my_im2col and my_col2im checks above first: each says which entry is off. "
             "The conv2d's backward uses nothing of yours but col2im for dx and im2col's cols for dw.")


@check("conv2d built from my_im2col and my_col2im", shape_hint=SHAPE_HINTS, value_hint=PAIR_HINT)
def check_conv2d_pair(my_im2col, my_col2im):
    rng, worst = np.random.default_rng(2), 0.0
    for x_shape, kernel, stride, padding in IM2COL_CONFIGS:
        where = config(x_shape, kernel, stride, padding)
        x = rng.standard_normal(x_shape)
        cols = rng.standard_normal(cols_shape(x_shape, kernel, stride, padding))
        with case(where):
            lhs = float((np.asarray(my_im2col(x.copy(), kernel, stride, padding)) * cols).sum())
            rhs = float((x * np.asarray(my_col2im(cols.copy(), x_shape, kernel, stride, padding))).sum())
        if not np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10):
            raise Mismatch(f"for {where} your pair is not adjoint:\n"
                           f"  <my_im2col(x), c> = {lhs:.10g}\n  <x, my_col2im(c)> = {rhs:.10g}\n"
                           f"hint: {PAIR_HINT}")
    conv2d = conv2d_from(my_im2col, my_col2im)
    for x_shape, w_shape, stride, padding in CONV_GRAD_CONFIGS:
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        where = f"conv2d x{x_shape} w{w_shape} stride {stride} padding {padding}"
        with case(where):
            mine = conv2d(Tensor(x), Tensor(w), stride, padding).data
            expected = tinyresnet_conv2d(Tensor(x), Tensor(w), stride, padding).data
            if not np.allclose(mine, expected, rtol=1e-10, atol=1e-10):
                raise Mismatch(f"for {where} the forward pass differs from tinyresnet's conv2d by up to "
                               f"{np.abs(mine - expected).max():.3g}.\nhint: {PAIR_HINT}")
            worst = max(worst, gradcheck(lambda x, w: conv2d(x, w, stride, padding), x, w,
                                         max_checks=32, name=where))
    return (f"adjoint on {len(IM2COL_CONFIGS)} shapes; equal to tinyresnet's conv2d and gradchecked on "
            f"{len(CONV_GRAD_CONFIGS)} shapes, worst relative error {worst:.1e}")
