"""Functional ops: every layer of a CIFAR ResNet as a function of tensors.

conv2d, batch_norm and cross_entropy live in their own modules (one concept
each); the small ops are built here, mostly from the autograd primitives.
"""
from .autograd import Tensor
from .batchnorm import batch_norm
from .conv import conv2d
from .im2col import channels_last_zeros
from .device import xp_of
from .loss import cross_entropy

__all__ = ["conv2d", "batch_norm", "cross_entropy", "relu", "linear",
           "global_avg_pool", "subsample", "pad_channels"]


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
