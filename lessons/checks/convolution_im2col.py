"""Lesson 02 (02_convolution_im2col.ipynb): im2col, its adjoint col2im, and the conv2d they make.

The learner's im2col and col2im are compared entry by entry with tinyresnet.im2col; their
conv2d_forward and conv2d_backward with the definitions in tinyresnet/conv.py, on the shapes
of tests/core/test_conv.py, and the backward pass is gradchecked against central differences.
When an answer is wrong, the check tries the usual slips on the same input and names the one
that gives the learner's numbers.
"""
import itertools

import numpy as np

from tinyresnet import Tensor, gradcheck
from tinyresnet.conv import backward, forward
from tinyresnet.im2col import col2im, im2col, output_size, unfold_kernel

from .harness import Mismatch, case, check, returned

# x shape (N, C, H, W), kernel (R, S), stride, padding
IM2COL_CONFIGS = [
    ((1, 1, 4, 4), (3, 3), 1, 0),    # the smallest case: one image, one channel
    ((2, 3, 5, 5), (3, 3), 1, 1),    # ResNet's 3x3 conv, "same" padding
    ((1, 2, 7, 5), (3, 3), 2, 0),    # non-square input, stride 2
    ((2, 3, 8, 8), (3, 3), 2, 1),    # ResNet's downsampling conv
    ((2, 2, 6, 6), (1, 1), 2, 0),    # 1x1, stride 2 (a projection shortcut)
    ((2, 3, 6, 5), (3, 2), 1, 1),    # non-square kernel
]
# the conv2d forward checks, here and in tests/ (tests/helpers/conv_shapes.py reads them from here):
# x shape, w shape, stride, padding
CONV_CONFIGS = [
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
    ((1, 1, 7, 5), (2, 1, 3, 3), 2, 0),      # non-square input, stride 2
    ((2, 3, 8, 8), (4, 3, 3, 3), 2, 1),      # the ResNet downsampling conv
    ((2, 2, 6, 6), (3, 2, 1, 1), 1, 0),      # 1x1 kernel
    ((1, 3, 5, 7), (2, 3, 5, 5), 1, 2),      # big kernel, padding 2
    ((2, 3, 6, 5), (4, 3, 3, 2), 1, 1),      # non-square kernel
    ((2, 16, 4, 4), (8, 16, 3, 3), 1, 1),    # many channels
    ((2, 3, 6, 6), (4, 3, 3, 3), 1, 0),      # no padding: the output is smaller than the input
]
# the conv2d gradient checks, here and in tests/core/test_conv.py
CONV_GRAD_CONFIGS = [
    ((1, 1, 5, 5), (2, 1, 3, 3), 1, 0),      # batch 1, one channel
    ((2, 3, 7, 5), (4, 3, 3, 3), 1, 1),      # non-square input
    ((2, 3, 7, 5), (4, 3, 3, 3), 2, 1),      # stride 2
    ((1, 3, 6, 6), (2, 3, 3, 3), 2, 0),      # stride 2, last row/column never reached
    ((1, 16, 3, 3), (16, 16, 3, 3), 1, 1),   # 16 channels in and out
    ((2, 2, 4, 4), (3, 2, 1, 1), 2, 0),      # 1x1 stride-2 (a projection shortcut)
    ((2, 3, 6, 5), (4, 3, 3, 2), 1, 1),      # non-square kernel
]

SHAPE_HINTS = {
    "my_im2col": "im2col returns (N*Ho*Wo, R*S*C) with Ho = (H + 2*padding - R) // stride + 1: pad only "
                 "H and W (axes 2 and 3); for each kernel offset (r, s) the slice "
                 "x_padded[:, :, r:r + stride*Ho:stride, s:s + stride*Wo:stride] is (N, C, Ho, Wo), and it "
                 "goes to position [:, :, :, r, s, :] of an (N, Ho, Wo, R, S, C) array as (N, Ho, Wo, C).",
    "my_col2im": "col2im gets cols (N*Ho*Wo, R*S*C): reshape it to (N, Ho, Wo, R, S, C); dx_padded is "
                 "(N, C, H + 2*padding, W + 2*padding), and each slab cols[:, :, :, r, s, :] (N, Ho, Wo, C) "
                 "is added, as (N, C, Ho, Wo), at x_padded[:, :, r:r + stride*Ho:stride, s:s + stride*Wo:stride].",
    "conv2d_forward": "cols = my_im2col(x, (R, S), stride, padding) is (N*Ho*Wo, R*S*C); "
                      "w2 = w.transpose(2, 3, 1, 0).reshape(R*S*C, K) has one row per column of cols; "
                      "cols @ w2 is (N*Ho*Wo, K): reshape it to (N, Ho, Wo, K), then transpose(0, 3, 1, 2).",
    "conv2d_backward": "g2 = g.transpose(0, 2, 3, 1).reshape(-1, K) is (N*Ho*Wo, K), one row per row of cols; "
                       "dw2 = cols.T @ g2 is (R*S*C, K); dcols = g2 @ w2.T is (N*Ho*Wo, R*S*C), the shape "
                       "of cols, and my_col2im takes it with the same kernel, stride and padding as my_im2col.",
}
BACKWARD_HINT = ("with g2 = g.transpose(0, 2, 3, 1).reshape(-1, K), rows (n, i, j) like cols: "
                 "dw2 = cols.T @ g2, folded back to (K, C, R, S), and dx = my_col2im(g2 @ w2.T, ...).")
TOL = dict(rtol=1e-10, atol=1e-10)


def config(x_shape, kernel, stride, padding):
    return f"x{x_shape} kernel {kernel} stride {stride} padding {padding}"


def conv_config(x_shape, w_shape, stride, padding):
    return f"x{x_shape} w{w_shape} stride {stride} padding {padding}"


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


def _channel_fastest_columns(cols, x_shape, kernel):
    """The inverse of _channel_major_columns: what a col2im that reads the columns as
    (c, r, s) adds back, expressed as a correctly ordered (r, s, c) matrix."""
    r, s = kernel
    return cols.reshape(-1, x_shape[1], r, s).transpose(0, 2, 3, 1).reshape(cols.shape)


def _close(a, b):
    return a.shape == b.shape and np.allclose(a, b, **TOL)


def _col2im_assigning(cols, x_shape, kernel, stride, padding):
    """col2im with the slip `=` where `+=` belongs: each kernel offset (r, s), in order, overwrites
    what the ones before it wrote."""
    n, c, h, w = x_shape
    (r_size, s_size), p = kernel, padding
    ho, wo = output_size(h, r_size, stride, p), output_size(w, s_size, stride, p)
    slabs = cols.reshape(n, ho, wo, r_size, s_size, c)
    dx = np.zeros((n, c, h + 2 * p, w + 2 * p))
    for r in range(r_size):
        for s in range(s_size):
            dx[:, :, r:r + stride * ho:stride, s:s + stride * wo:stride] = slabs[:, :, :, r, s, :].transpose(0, 3, 1, 2)
    return dx[:, :, p:p + h, p:p + w]


def _assigns(mine, cols, x_shape, kernel, stride, padding):
    """Does mine look like col2im with `=` for `+=`? Exactly that slip, or (written in another
    loop order) right on every pixel that one window reads and wrong on some that several share."""
    if _close(mine, _col2im_assigning(cols, x_shape, kernel, stride, padding)):
        return True
    counts = col2im(np.ones_like(cols), x_shape, kernel, stride, padding)   # windows that read each pixel
    right = np.isclose(mine, col2im(cols, x_shape, kernel, stride, padding), **TOL)
    single = counts <= 1
    return bool(single.any() and right[single].all() and not right[~single].all())


def _first_wrong(mine, expected, name):
    """'k of n entries are wrong; the first is name[...]: yours a, expected b'."""
    wrong = np.argwhere(~np.isclose(mine, expected, **TOL))
    index = tuple(int(i) for i in wrong[0])
    return (f"{len(wrong)} of {mine.size} entries of {name} are wrong; the first is {name}{list(index)}: "
            f"yours {mine[index]:.6g}, expected {expected[index]:.6g}")


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


COL2IM_ASSIGNS = ("hint: the pixels read by a single window are right, the pixels shared by "
                  "overlapping windows are not: you ASSIGN (=) where col2im must ADD (+=). Each window "
                  "overwrites what the windows before it put there; a pixel read by 9 windows needs "
                  "the sum of its 9 entries.")
COL2IM_COLUMN_ORDER = ("hint: you read the columns of cols in the order (c, r, s). im2col wrote them "
                       "(r, s, c), channel fastest: reshape cols to (N, Ho, Wo, R, S, C), and take the slab "
                       "cols[:, :, :, r, s, :] for kernel offset (r, s).")
COL2IM_ANY = ("hint: walk the same (n, i, j) x (r, s, c) positions as im2col and add each entry back into "
              "x_padded[n, c, i*stride + r, j*stride + s]; then cut the padding off.")


def col2im_slip(mine, cols, x_shape, kernel, stride, padding):
    """The hint that names what a wrong col2im did: a wrong column order, `=` for `+=`, or neither."""
    reordered = col2im(_channel_fastest_columns(cols, x_shape, kernel), x_shape, kernel, stride, padding)
    if _close(mine, reordered):
        return COL2IM_COLUMN_ORDER
    if _assigns(mine, cols, x_shape, kernel, stride, padding):
        return COL2IM_ASSIGNS
    return COL2IM_ANY


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
        if not _close(mine, expected):
            lhs, rhs = float((im2col(x, kernel, stride, padding) * cols).sum()), float((x * mine).sum())
            n, c, h, w = np.argwhere(~np.isclose(mine, expected, **TOL))[0]
            copies = col2im(np.ones_like(cols), x_shape, kernel, stride, padding)[n, c, h, w]
            raise Mismatch(
                f"for {where} col2im is not the adjoint of im2col:\n"
                f"  <im2col(x), cols> = {lhs:.6g}   but   <x, col2im(cols)> = {rhs:.6g}\n"
                f"{_first_wrong(mine, expected, 'dx')},\n"
                f"  the sum of the {copies:.0f} entries of cols that im2col copied from this pixel\n"
                + col2im_slip(mine, cols, x_shape, kernel, stride, padding))
    return (f"matches tinyresnet.im2col.col2im on {len(IM2COL_CONFIGS)} shapes, "
            "so <im2col(x), c> = <x, col2im(c)> holds")


# ------------------------------------------------------------------ conv2d_forward

def forward_slip_in_shape(mine_shape, x_shape, w_shape, stride, padding):
    """The hint for a conv2d_forward output of the wrong shape."""
    n, _, h, wid = x_shape
    k, _, r, s = w_shape
    ho, wo = output_size(h, r, stride, padding), output_size(wid, s, stride, padding)
    if mine_shape == (n * ho * wo, k):
        return ("you returned the product as it comes out, (N*Ho*Wo, K). Its rows are the output pixels "
                "(n, i, j), its columns the filters k: reshape(N, Ho, Wo, K), then transpose(0, 3, 1, 2).")
    if mine_shape == (n, ho, wo, k):
        return "that is (N, Ho, Wo, K): one transpose(0, 3, 1, 2) more moves the filters to axis 1."
    if mine_shape == (k, n, ho, wo):
        return ("that is (K, N, Ho, Wo): N and K are swapped. The product reshaped to (N, Ho, Wo, K) needs "
                "transpose(0, 3, 1, 2), which keeps the images on axis 0 and moves the filters to axis 1.")
    if stride > 1 and mine_shape == (n, k, output_size(h, r, 1, padding), output_size(wid, s, 1, padding)):
        return ("that is the output of stride 1: the stride was ignored. Pass it to my_im2col, and "
                "compute Ho = (H + 2*padding - R) // stride + 1.")
    if padding > 0 and mine_shape == (n, k, output_size(h, r, stride, 0), output_size(wid, s, stride, 0)):
        return "that is the output without padding: pass padding to my_im2col and count it in Ho and Wo."
    return "Ho = (H + 2*padding - R) // stride + 1, Wo likewise; the output is (N, K, Ho, Wo)."


def forward_slip_in_values(mine, x, w, stride, padding):
    """The hint for a conv2d_forward output of the right shape and wrong numbers."""
    expected = forward(x, w, stride, padding)
    n, k, ho, wo = expected.shape
    if _close(mine, expected.transpose(0, 2, 3, 1).reshape(n, k, ho, wo)):
        return ("you reshaped the product straight to (N, K, Ho, Wo). Its rows are the output pixels "
                "(n, i, j) and its columns the filters k, so it is (N, Ho, Wo, K) in memory: "
                "reshape(N, Ho, Wo, K) first, then transpose(0, 3, 1, 2).")
    cols = im2col(x, w.shape[2:], stride, padding)
    product = (cols @ unfold_kernel(w)).reshape(n, ho, wo, k)
    for axes in itertools.permutations(range(4)):
        moved = product.transpose(axes)
        if axes != (0, 3, 1, 2) and moved.shape == expected.shape and _close(mine, moved):
            return (f"cols and w2 are right, and so is the product; only its axes are not: reshaped to "
                    f"(N, Ho, Wo, K) it needs transpose(0, 3, 1, 2), and yours is transpose{axes}.")
    if _close(mine, (cols @ w.reshape(k, -1).T).reshape(n, ho, wo, k).transpose(0, 3, 1, 2)):
        return ("w.reshape(K, -1).T flattens each filter in the order (c, r, s), but the columns of cols "
                "are (r, s, c): use w2 = w.transpose(2, 3, 1, 0).reshape(R*S*C, K).")
    return ("out[n, k, i, j] is row (n, i, j) of cols times column k of w2. If the my_im2col check "
            "above fails, fix that first; otherwise compare your w2 with w.transpose(2, 3, 1, 0)"
            ".reshape(R*S*C, K).")


@check("conv2d_forward", shape_hint=SHAPE_HINTS)
def check_conv2d_forward(conv2d_forward):
    rng = np.random.default_rng(3)
    for x_shape, w_shape, stride, padding in CONV_CONFIGS:
        where = conv_config(x_shape, w_shape, stride, padding)
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        expected = forward(x, w, stride, padding)
        with case(where):
            mine = np.asarray(conv2d_forward(x.copy(), w.copy(), stride, padding))
        if mine.shape != expected.shape:
            raise Mismatch(f"for {where}, the output has shape {mine.shape}, expected (N, K, Ho, Wo) = "
                           f"{expected.shape}.\nhint: "
                           + forward_slip_in_shape(mine.shape, x_shape, w_shape, stride, padding))
        if not _close(mine, expected):
            raise Mismatch(f"for {where}, {_first_wrong(mine, expected, 'out')}\nhint: "
                           + forward_slip_in_values(mine, x, w, stride, padding))
    return (f"matches tinyresnet.conv's forward definition on {len(CONV_CONFIGS)} shapes "
            "(stride 1/2, padding 0/1/2, non-square, 1x1)")


# ------------------------------------------------------------------ conv2d_backward

def _scrambled_g(g):
    """The g whose correct g2 is g.reshape(-1, K): what a backward pass that forgets to move
    the filter axis last computes with."""
    n, k, ho, wo = g.shape
    return g.reshape(n, ho, wo, k).transpose(0, 3, 1, 2)


def dw_slip(mine, x, w, g, stride, padding):
    """The hint for a wrong dw, or None when no usual slip gives it."""
    dw = backward(x, g, w, stride, padding)[1]
    dw2 = unfold_kernel(dw)                                   # (R*S*C, K), rows (r, s, c)
    if _close(mine, dw2.reshape(w.shape)) or _close(mine, dw2.T.reshape(w.shape)):
        return ("dw holds the right numbers in the wrong places: dw2 = cols.T @ g2 is (R*S*C, K) with rows "
                "(r, s, c), and a plain reshape to (K, C, R, S) scrambles them. Fold it back with "
                "dw2.reshape(R, S, C, K).transpose(3, 2, 0, 1).")
    if _close(mine, backward(x, _scrambled_g(g), w, stride, padding)[1]):
        return G2_HINT
    return None


G2_HINT = ("g.reshape(-1, K) mixes filters and pixels, because g's axis 1 is the filter: move it last "
           "first, g2 = g.transpose(0, 2, 3, 1).reshape(-1, K), so that row (n, i, j) of g2 goes with "
           "row (n, i, j) of cols.")


def dx_slip(mine, x, w, g, stride, padding):
    """The hint for a wrong dx, or None when no usual slip gives it."""
    k, c, r, s = w.shape
    dx = backward(x, g, w, stride, padding)[0]
    g2 = g.transpose(0, 2, 3, 1).reshape(-1, k)
    dcols = g2 @ unfold_kernel(w).T
    if _close(mine, col2im(g2 @ w.reshape(k, -1), x.shape, (r, s), stride, padding)):
        return ("w.reshape(K, -1) flattens each filter in the order (c, r, s), but the columns of cols "
                "are (r, s, c): use w2 = w.transpose(2, 3, 1, 0).reshape(R*S*C, K) and dcols = g2 @ w2.T.")
    if _close(mine, backward(x, _scrambled_g(g), w, stride, padding)[0]):
        return G2_HINT
    if _assigns(mine, dcols, x.shape, (r, s), stride, padding):
        return ("the pixels read by a single window are right, the pixels shared by overlapping windows "
                "are not: the col2im that carries dcols back must ADD (+=) every window's share. "
                "Run the my_col2im check above.")
    return None


def with_your_backward(conv2d_backward, stride, padding):
    """conv2d as a Tensor op whose forward is tinyresnet's definition and whose backward is yours."""
    def conv(x, w):
        out = forward(x.data, w.data, stride, padding)            # (N, K, Ho, Wo)

        def backward(g):
            dx, dw = conv2d_backward(x.data.copy(), w.data.copy(), g.copy(), stride, padding)
            return np.asarray(dx), np.asarray(dw)
        return Tensor.from_op(out, (x, w), backward, "conv2d")
    return conv


@check("conv2d_backward", shape_hint=SHAPE_HINTS, value_hint=BACKWARD_HINT)
def check_conv2d_backward(conv2d_backward):
    rng, worst = np.random.default_rng(4), 0.0
    for x_shape, w_shape, stride, padding in CONV_GRAD_CONFIGS:
        where = conv_config(x_shape, w_shape, stride, padding)
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        g = rng.standard_normal(forward(x, w, stride, padding).shape)   # dLoss/dout
        expected_dx, expected_dw = backward(x, g, w, stride, padding)
        with case(where):
            result = conv2d_backward(x.copy(), w.copy(), g.copy(), stride, padding)
            dx, dw = (np.asarray(a) for a in returned(result, "conv2d_backward",
                                                       [("dx", x_shape), ("dw", w_shape)]))
        for name, mine, expected, slip in (("dw", dw, expected_dw, dw_slip), ("dx", dx, expected_dx, dx_slip)):
            hint = None if _close(mine, expected) else slip(mine, x, w, g, stride, padding)
            if hint:
                raise Mismatch(f"for {where}, {_first_wrong(mine, expected, name)}\nhint: {hint}")
        with case(where):
            worst = max(worst, gradcheck(with_your_backward(conv2d_backward, stride, padding), x, w,
                                         max_checks=32, name=f"conv2d {where}"))
        for name, mine, expected in (("dw", dw, expected_dw), ("dx", dx, expected_dx)):
            if not _close(mine, expected):
                raise Mismatch(f"for {where}, {_first_wrong(mine, expected, name)}\nhint: {BACKWARD_HINT}")
    return (f"equals tinyresnet.conv's backward definition and passes gradcheck on {len(CONV_GRAD_CONFIGS)} "
            f"shapes (stride 1/2, padding 0/1, non-square, 1x1), worst relative error {worst:.1e}")
