"""Functional ops: every layer of a CIFAR ResNet as a function of tensors.

conv2d, batch_norm and cross_entropy live in their own modules (one concept
each); the small ops are built here, mostly from the autograd primitives.
"""
from .autograd import Tensor
from .batchnorm import batch_norm
from .conv import conv2d
from .device import channels_last_zeros, xp_of
from .im2col import output_size
from .loss import cross_entropy

__all__ = ["conv2d", "batch_norm", "cross_entropy", "relu", "linear",
           "global_avg_pool", "max_pool2d", "subsample", "pad_channels"]


def relu(x):
    """max(x, 0), elementwise; the gradient passes where x > 0."""
    return x.relu()


def linear(x, w, b=None):
    """x: (N, in) @ w.T with w: (out, in), plus b: (out,) -> (N, out), as PyTorch."""
    out = x @ w.transpose()
    return out if b is None else out + b


def global_avg_pool(x):
    """x: (N, C, H, W) -> (N, C): the mean of each feature map."""
    return x.mean(axis=(2, 3))


def max_pool2d(x, kernel=3, stride=2, padding=1):
    """x: (N, C, H, W) -> (N, C, Ho, Wo): the largest value of each kernel×kernel window.

    The ImageNet ResNets' stem uses 3×3 windows with stride 2 and padding 1
    (112×112 -> 56×56). Padding never wins: it counts as -inf. The forward pass
    visits the kernel offsets one at a time, keeping the running maximum and
    which offset gave it; backward sends each window's gradient to that one
    input (the first of several equal maxima), so a pixel that wins several
    overlapping windows receives the sum of their gradients.
    """
    if padding > kernel // 2:
        raise ValueError(f"max_pool2d: padding must be at most kernel // 2 = {kernel // 2} (else a window "
                         f"can hold only padding), got kernel {kernel}, padding {padding}")
    xp, (n, c, h, w) = xp_of(x.data), x.shape
    ho, wo = output_size(h, kernel, stride, padding), output_size(w, kernel, stride, padding)
    if min(ho, wo) < 1:
        raise ValueError(f"max_pool2d: a {kernel}x{kernel} window does not fit a {h}x{w} input")
    padded = channels_last_zeros(xp, (n, c, h + 2 * padding, w + 2 * padding), x.dtype)
    padded[...] = -xp.inf
    padded[:, :, padding:padding + h, padding:padding + w] = x.data

    def window(a, r, s):
        """a[:, :, r + stride * i, s + stride * j] for every output pixel (i, j): a view."""
        return a[:, :, r:r + stride * (ho - 1) + 1:stride, s:s + stride * (wo - 1) + 1:stride]

    out = window(padded, 0, 0).copy(order="K")      # order K keeps channels last
    winner = xp.zeros(out.shape, dtype=xp.int16)    # which offset r * kernel + s holds the max
    for r in range(kernel):
        for s in range(kernel):
            candidate = window(padded, r, s)
            better = candidate > out
            winner[better] = r * kernel + s
            xp.maximum(out, candidate, out=out)

    def backward(g):
        dpadded = channels_last_zeros(xp, padded.shape, g.dtype)
        for r in range(kernel):
            for s in range(kernel):
                window(dpadded, r, s)[...] += xp.where(winner == r * kernel + s, g, 0)
        return (dpadded[:, :, padding:padding + h, padding:padding + w],)
    return Tensor.from_op(out, (x,), backward, "max_pool2d")


def subsample(x, stride=2):
    """x: (N, C, H, W) -> every stride-th row and column: the option-A shortcut's downsampling."""
    return x[:, :, ::stride, ::stride]


def pad_channels(x, before, after):
    """x: (N, C, H, W) -> (N, before + C + after, H, W) with zero channels added.

    The option-A shortcut adds no parameters: where a stage doubles the
    channels, the identity is extended with zeros. The gradient of the new
    channels goes nowhere; the old channels' gradient is sliced back out.
    """
    n, c, h, w = x.shape
    out = channels_last_zeros(xp_of(x.data), (n, before + c + after, h, w), x.dtype)
    out[:, before:before + c] = x.data
    return Tensor.from_op(out, (x,), lambda g: (g[:, before:before + c],), "pad_channels")
