"""The convolution of tinyresnet/conv.py, faster on a CPU: the same numbers, a few images at a time.

The core's definitions unfold the whole batch at once: at ResNet-CIFAR's largest
layer, cols is a (131072, 144) matrix, 75 MB, written to memory by im2col and
read back by the product, and kept for the weight gradient. Here a chunk of a
few images (CHUNK_BYTES of unfolded patches: 4 images of 32×32×16) is unfolded
into a buffer that stays in the core's cache and multiplied at once; the
chunks run on all cores (threads.py). Nothing is kept between forward and
backward: the backward pass unfolds again, chunk by chunk, which is cheaper
than storing 9× the input.

    forward:      out[chunk]  = im2col(x[chunk]) @ w2
    weight grad:  dw2         = sum over chunks of im2col(x[chunk])ᵀ @ g2[chunk]
    input grad:   dx[chunk]   = col2im(g2[chunk] @ w2ᵀ)                (any stride)
                  dx          = forward(g padded, w flipped)           (stride 1: a convolution)

The last line: with stride 1, input pixel (i, j) was seen by output pixel
(i - r + padding, j - s + padding) through w[:, :, r, s]. So dx is g, padded
by R-1-padding, cross-correlated with w flipped in space and with its two
channel axes swapped: the forward pass again, with no col2im at all.

That flipped correlation unfolds g into gcols, one row per *input* pixel,
holding every g that pixel fed. The weight gradient is the same sum read the
other way round (dw[k, c, r, s] = sum over pixels of x[c] * g[k] at offset
(R-1-r, S-1-s) in gcols), so `backward` computes both from one unfolding:

    dx[chunk] = gcols @ w2 of the flipped kernel      dw2 += gcolsᵀ @ x2[chunk]
"""
import math

import numpy as np

from ..device import channels_last_zeros
from ..im2col import col2im, fold_kernel, output_size, patches, unfold_kernel
from .threads import map_chunks, scratch

CHUNK_BYTES = 4096 * 144 * 4  # unfolded patches per chunk, 2.4 MB: they stay in cache (a smaller
                              # chunk costs more calls, a larger one spills; measured on ResNet-56)


def forward(x, w, stride, padding):
    """out = im2col(x) @ w2, chunk by chunk: x: (N, C, H, W), w: (K, C, R, S) -> (N, K, Ho, Wo)."""
    n, ho, wo = _output_shape(x.shape, w.shape, stride, padding)
    w2 = np.ascontiguousarray(unfold_kernel(w))
    out = np.empty((n, ho, wo, w.shape[0]), dtype=np.result_type(x, w))
    per_chunk = _images_per_chunk(ho * wo, w[0].size, x.dtype)

    def chunk(start, stop):
        cols = _unfold(x, start, stop, per_chunk, w.shape[2:], stride, padding)
        np.matmul(cols, w2, out=out[start:stop].reshape(len(cols), -1))
    map_chunks(chunk, n, per_chunk)
    return out.transpose(0, 3, 1, 2)


def weight_grad(x, g, w_shape, stride, padding):
    """dw = im2col(x)ᵀ @ g2, summed chunk by chunk: -> (K, C, R, S)."""
    n, ho, wo = _output_shape(x.shape, w_shape, stride, padding)
    g2 = g.transpose(0, 2, 3, 1)                              # (N, Ho, Wo, K)
    per_chunk = _images_per_chunk(ho * wo, math.prod(w_shape[1:]), x.dtype)

    def chunk(start, stop):
        cols = _unfold(x, start, stop, per_chunk, w_shape[2:], stride, padding)
        return cols.T @ g2[start:stop].reshape(len(cols), -1)
    return fold_kernel(sum(map_chunks(chunk, n, per_chunk)), w_shape)


def input_grad(g, w, x_shape, stride, padding):
    """dx = col2im(g2 @ w2ᵀ): g: (N, K, Ho, Wo) -> (N, C, H, W)."""
    k, c, r, s = w.shape
    if stride == 1 and padding <= min(r, s) - 1:
        flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, K, R, S)
        return _correlate_padded(g, flipped, r - 1 - padding, s - 1 - padding)
    n = x_shape[0]
    ho, wo = g.shape[2:]
    g2 = g.transpose(0, 2, 3, 1)
    w2t = np.ascontiguousarray(unfold_kernel(w).T)            # (K, R*S*C)
    dx = channels_last_zeros(np, x_shape, np.result_type(g, w))

    def chunk(start, stop):
        rows = g2[start:stop].reshape(-1, k) @ w2t
        dx[start:stop] = col2im(rows, (stop - start, *x_shape[1:]), (r, s), stride, padding)
    map_chunks(chunk, n, _images_per_chunk(ho * wo, w[0].size, dx.dtype))
    return dx


def backward(x, g, w, stride, padding, need_dx=True):
    """(dx, dw), the two gradients of a conv: x: (N, C, H, W), g: (N, K, Ho, Wo), w: (K, C, R, S).

    A stride-1 conv with a square kernel unfolds g once, for both (see above);
    any other conv, or one whose input needs no gradient (dx is then None),
    runs weight_grad and input_grad.
    """
    k, c, r, s = w.shape
    if not (need_dx and stride == 1 and r == s and padding <= r - 1):
        dx = input_grad(g, w, x.shape, stride, padding) if need_dx else None
        return dx, weight_grad(x, g, w.shape, stride, padding)
    n, _, h, wid = x.shape
    w2 = np.ascontiguousarray(unfold_kernel(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)))  # (R*S*K, C)
    x2 = x.transpose(0, 2, 3, 1)                              # (N, H, W, C)
    dx = np.empty((n, h, wid, c), dtype=np.result_type(g, w))
    per_chunk = _images_per_chunk(h * wid, r * s * k, dx.dtype)

    def chunk(start, stop):
        gcols = _unfold(g, start, stop, per_chunk, (r, s), 1, r - 1 - padding)  # a row per input pixel
        np.matmul(gcols, w2, out=dx[start:stop].reshape(len(gcols), -1))
        return gcols.T @ x2[start:stop].reshape(len(gcols), -1)
    dw_flipped = sum(map_chunks(chunk, n, per_chunk)).reshape(r, s, k, c)
    return dx.transpose(0, 3, 1, 2), np.ascontiguousarray(dw_flipped[::-1, ::-1].transpose(2, 3, 0, 1))


def _correlate_padded(g, w, pad_h, pad_w):
    """forward() with a padding of its own for each axis (the flipped kernel may be R×S)."""
    if pad_h == pad_w:
        return forward(g, w, 1, pad_h)
    n, k, ho, wo = g.shape
    gpad = channels_last_zeros(np, (n, k, ho + 2 * pad_h, wo + 2 * pad_w), g.dtype)
    gpad[:, :, pad_h:pad_h + ho, pad_w:pad_w + wo] = g
    return forward(gpad, w, 1, 0)


def _unfold(x, start, stop, per_chunk, kernel, stride, padding):
    """cols of images start..stop of x: (n*Ho*Wo, R*S*C), built in this thread's buffers.

    The chunk is padded into a buffer whose border stays zero (only the
    inside is ever written), then its patches are copied out, side by side:
    both copies stay in cache.
    """
    n, c, h, w = x.shape
    x = x[start:stop]
    if padding:
        shape = (per_chunk, h + 2 * padding, w + 2 * padding, c)
        padded = scratch(shape, x.dtype, kind=f"padded by {padding}")[:stop - start].transpose(0, 3, 1, 2)
        padded[:, :, padding:padding + h, padding:padding + w] = x
        x = padded
    view = patches(x, kernel, stride, 0)                      # (n, Ho, Wo, R, S, C), no copy
    cols = scratch((per_chunk, *view.shape[1:]), x.dtype)[:stop - start]
    np.copyto(cols, view)
    return cols.reshape(-1, int(np.prod(view.shape[3:])))


def _output_shape(x_shape, kernel_shape, stride, padding):
    r, s = kernel_shape[2:]
    n, _, h, w = x_shape
    return n, output_size(h, r, stride, padding), output_size(w, s, stride, padding)


def _images_per_chunk(pixels_per_image, floats_per_row, dtype):
    """Images whose unfolded patches (a row of floats_per_row per pixel) fill CHUNK_BYTES; at least 1."""
    return max(1, CHUNK_BYTES // (pixels_per_image * floats_per_row * np.dtype(dtype).itemsize))
