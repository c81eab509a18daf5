"""Lesson 02: im2col and its adjoint col2im, written for clarity.

x: (N, C, H, W); kernel (R, S); cols: (N*Ho*Wo, R*S*C), one row per output
pixel (n, i, j) and one column per (r, s, c), channel fastest:

    cols[(n, i, j), (r, s, c)] = x_padded[n, c, i*stride + r, j*stride + s]

Both loop over the R*S kernel offsets only; each step moves a whole
(N, Ho, Wo, C) slab with one strided slice. These versions take and return
ordinary (N, C, H, W) arrays; tinyresnet's own im2col does the same work on
channels-last activations with a strided view (see tinyresnet/im2col.py).
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
    # the six indices of cols, before the rows (n, i, j) and the columns (r, s, c) are flattened
    cols = np.empty((n, ho, wo, r, s, c), dtype=x.dtype)
    for i in range(r):
        for j in range(s):
            # kernel offset (i, j) sees rows i, i+stride, ... and columns j, j+stride, ...
            patch = xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]  # (N, C, Ho, Wo)
            cols[:, :, :, i, j, :] = patch.transpose(0, 2, 3, 1)                  # as (N, Ho, Wo, C)
    # (N, Ho, Wo, R, S, C) -> rows (n, i, j), columns (r, s, c)
    return cols.reshape(n * ho * wo, r * s * c)


def my_col2im(cols, x_shape, kernel, stride=1, padding=0):
    n, c, h, w, r, s, ho, wo = _sizes(x_shape, kernel, stride, padding)
    # undo the flattening: back to (N, Ho, Wo, R, S, C)
    cols = cols.reshape(n, ho, wo, r, s, c)
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(r):
        for j in range(s):
            # the same slots im2col read from; += because overlapping windows share pixels
            slab = cols[:, :, :, i, j, :].transpose(0, 3, 1, 2)                   # (N, C, Ho, Wo)
            dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += slab
    # the padding was never part of x: cut it off
    return dx[:, :, padding:padding + h, padding:padding + w]
