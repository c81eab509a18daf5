"""Batch normalization (Ioffe & Szegedy 2015) with its closed-form backward pass."""
from typing import NamedTuple

import numpy as np

from . import fastbatchnorm
from .autograd import Tensor
from .channels import as_rows, channel_dot, channel_sum, scale_shift
from .device import same_device, xp_of


def batch_norm(x, gamma, beta, running_mean, running_var, training,
               momentum=0.1, eps=1e-5):
    """Normalize x: (N, C, H, W) per channel, then scale by gamma and shift by beta: (C,).

    training=True uses the batch's mean and (biased) variance and updates the
    running statistics in place, as PyTorch does:
        running = (1 - momentum) * running + momentum * batch_stat   (unbiased variance)
    training=False uses the running statistics, so an image's output does not
    depend on the rest of its batch.
    """
    same_device(x.data, gamma.data, beta.data, running_mean, running_var, op="batch_norm")
    xp = xp_of(x.data)
    m = x.data.size // x.shape[1]  # values per channel
    if training and m < 2:
        raise ValueError(f"batch_norm in training mode needs more than one value per channel, "
                         f"got input of shape {x.shape}")
    run = passes(xp, x.data)
    if training:
        mean, var, centered = run.statistics(xp, x.data)  # centered = x - mean, kept for backward
        inv_std = 1 / xp.sqrt(var + eps)
        scale = gamma.data * inv_std  # gamma * xhat == scale * centered: one multiply, not two
        out = run.normalize(xp, centered, scale, beta.data)  # centered * scale + beta
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * (m / (m - 1))
    else:  # a fixed per-channel affine map: one pass, x * scale + (beta - mean * scale)
        mean, centered = running_mean, None
        inv_std = 1 / xp.sqrt(running_var + eps)
        scale = gamma.data * inv_std
        out = run.normalize(xp, x.data, scale, beta.data - mean * scale)

    def backward(g):
        c = centered if training else scale_shift(xp, x.data, 1, -mean)  # x - mean
        run = passes(xp, c, g)
        dbeta, g_dot_c = run.gradient_sums(xp, g, c)
        dgamma = g_dot_c * inv_std  # sum of g * xhat
        if not x.requires_grad:
            return None, dgamma, dbeta
        if not training:
            return scale_shift(xp, g, scale, 0), dgamma, dbeta
        # dx = gamma/std * (g - mean(g) - xhat * mean(g * xhat)): the last two terms are
        # the paths through the batch mean and variance, which depend on every x
        return run.input_gradient(xp, g, c, -dgamma * inv_std / m, -dbeta / m, scale), dgamma, dbeta
    return Tensor.from_op(out, (x, gamma, beta), backward, "batch_norm")


# The four passes over the activations, as they read (the definitions); fastbatchnorm.py has the
# same four, faster on a CPU.

def statistics(xp, x):
    """Per channel: the mean and the (biased) variance of x: (N, C, H, W), and x - mean."""
    m = x.size // x.shape[1]
    mean = channel_sum(xp, x) / m
    centered = scale_shift(xp, x, 1, -mean)
    return mean, channel_dot(xp, centered, centered) / m, centered


def normalize(xp, a, scale, shift):
    """a * scale + shift per channel."""
    return scale_shift(xp, a, scale, shift)


def gradient_sums(xp, g, centered):
    """Per channel: sum of g, and sum of g * centered."""
    return channel_sum(xp, g), channel_dot(xp, g, centered)


def input_gradient(xp, g, centered, k, shift, scale):
    """(g + centered * k + shift) * scale, per channel: dx of training-mode batch norm."""
    dx = scale_shift(xp, centered, k, shift)
    dx += g
    return scale_shift(xp, dx, scale, 0, out=dx)


class Passes(NamedTuple):
    statistics: object
    normalize: object
    gradient_sums: object
    input_gradient: object


DEFINITION = Passes(statistics, normalize, gradient_sums, input_gradient)
FAST = Passes(fastbatchnorm.statistics, fastbatchnorm.normalize, fastbatchnorm.gradient_sums,
              fastbatchnorm.input_gradient)


def passes(xp, *arrays):
    """The definitions, or on a CPU, for arrays all stored channels-last, fastbatchnorm's equal
    but faster passes. This is the one place that chooses."""
    fast = xp is np and fastbatchnorm.ENABLED and all(as_rows(a) is not None for a in arrays)
    return FAST if fast else DEFINITION
