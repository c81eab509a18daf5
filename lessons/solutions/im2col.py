"""Lesson 02: im2col and its adjoint col2im, written for clarity.

x: (N, C, H, W); kernel (R, S); cols: (C*R*S, N*Ho*Wo) with
rows ordered (c, r, s) and columns ordered (n, i, j):

    cols[(c, r, s), (n, i, j)] = x_padded[n, c, i*stride + r, j*stride + s]

Both loop over the R*S kernel offsets only; each step moves a whole
(C, N, Ho, Wo) slab with one strided slice.
"""
import numpy as np


def _sizes(x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    r, s = kernel
    ho = (h + 2 * padding - r) // stride + 1
    wo = (w + 2 * padding - s) // stride + 1
    return n, c, h, w, r, s, ho, wo


def my_im2col(x, kernel, stride=1, padding=0):
    n, c, h, w, r, s, ho, wo = _sizes(x.shape, kernel, stride, padding)
    # zeros around the height and width only
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((c, r, s, n, ho, wo), dtype=x.dtype)
    for i in range(r):
        for j in range(s):
            # kernel offset (i, j) sees rows i, i+stride, ... and columns j, j+stride, ...
            patch = xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]  # (N, C, Ho, Wo)
            cols[:, i, j] = patch.transpose(1, 0, 2, 3)                           # as (C, N, Ho, Wo)
    # (C, R, S, N, Ho, Wo) -> rows (c, r, s), columns (n, i, j)
    return cols.reshape(c * r * s, n * ho * wo)


def my_col2im(cols, x_shape, kernel, stride=1, padding=0):
    n, c, h, w, r, s, ho, wo = _sizes(x_shape, kernel, stride, padding)
    cols = cols.reshape(c, r, s, n, ho, wo)
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(r):
        for j in range(s):
            # the same slots im2col read from; += because overlapping windows share pixels
            dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += cols[:, i, j].transpose(1, 0, 2, 3)
    # the padding was never part of x: cut it off
    return dx[:, :, padding:padding + h, padding:padding + w]
