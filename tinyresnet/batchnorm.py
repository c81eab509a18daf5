"""Batch normalization (Ioffe & Szegedy 2015) with its closed-form backward pass.

Per channel c, over the m = N*H*W values of a batch:

    mean = sum(x) / m                  var = sum((x - mean)²) / m
    xhat = (x - mean) / sqrt(var + eps)
    out  = gamma * xhat + beta

and, with g = dLoss/dout,

    dbeta  = sum(g)                    dgamma = sum(g * xhat)
    dx     = gamma / sqrt(var + eps) * (g - dbeta / m - xhat * dgamma / m)

The last two terms of dx are the paths through the batch mean and variance, which
depend on every x. batch_norm below goes over the activations in four named passes
(statistics, normalize, gradient_sums, input_gradient), each one line of this math; the
CPU speed wing (tinyresnet/cpu/batchnorm.py) has equal versions of the four that work a
cache-sized block at a time, and tinyresnet.cpu.install() puts them in place.
"""
from .autograd import Tensor
from .device import as_float, same_device, xp_of


def batch_norm(x, gamma, beta, running_mean, running_var, training,
               momentum=0.1, eps=1e-5):
    """Normalize x: (N, C, H, W) per channel, then scale by gamma and shift by beta: (C,).

    training=True uses the batch's mean and (biased) variance and updates the
    running statistics in place, as PyTorch does:
        running = (1 - momentum) * running + momentum * batch_stat   (unbiased variance)
    training=False uses the running statistics, so an image's output does not
    depend on the rest of its batch.
    """
    _check(x, gamma, beta, running_mean, running_var, training)
    xp, data = xp_of(x.data), as_float(x.data)
    m = data.size // data.shape[1]  # values per channel
    if training:
        mean, var, centered = statistics(data)  # centered = x - mean, kept for backward
        inv_std = 1 / xp.sqrt(var + eps)
        scale = gamma.data * inv_std  # gamma * xhat == scale * centered: one multiply, not two
        out = normalize(centered, scale, beta.data)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * (m / (m - 1))
    else:  # a fixed per-channel affine map: x * scale + (beta - mean * scale)
        mean = running_mean
        inv_std = 1 / xp.sqrt(running_var + eps)
        scale = gamma.data * inv_std
        out = normalize(data, scale, beta.data - mean * scale)

    def backward(g):
        c = centered if training else data - per_channel(mean)
        dbeta, g_dot_c = gradient_sums(g, c)
        dgamma = g_dot_c * inv_std  # sum of g * xhat
        if not x.requires_grad:
            return None, dgamma, dbeta
        if not training:  # the statistics are constants: dx = g * gamma / std
            return g * per_channel(scale), dgamma, dbeta
        return input_gradient(g, c, -dgamma * inv_std / m, -dbeta / m, scale), dgamma, dbeta
    return Tensor.from_op(out, (x, gamma, beta), backward, "batch_norm")


# The four passes over the activations x, g: (N, C, H, W); every other array here is (C,).

def statistics(x):
    """Per channel: the mean and the (biased) variance of x, and x - mean."""
    mean = x.mean(axis=(0, 2, 3))
    centered = x - per_channel(mean)
    return mean, (centered * centered).mean(axis=(0, 2, 3)), centered


def normalize(a, scale, shift):
    """a * scale + shift, per channel."""
    return a * per_channel(scale) + per_channel(shift)


def gradient_sums(g, centered):
    """Per channel: the sum of g, and the sum of g * centered."""
    return g.sum(axis=(0, 2, 3)), (g * centered).sum(axis=(0, 2, 3))


def input_gradient(g, centered, k, shift, scale):
    """(g + centered * k + shift) * scale, per channel: dx of training-mode batch norm."""
    return (g + centered * per_channel(k) + per_channel(shift)) * per_channel(scale)


def per_channel(v):
    """A per-channel vector (C,) shaped (1, C, 1, 1), to broadcast against (N, C, H, W)."""
    return v.reshape(1, -1, 1, 1)


def _check(x, gamma, beta, running_mean, running_var, training):
    """One-line errors that name batch norm for the usual shape mistakes."""
    same_device(x.data, gamma.data, beta.data, running_mean, running_var, op="batch_norm")
    if x.data.ndim != 4:
        raise ValueError(f"batch_norm wants x: (N, C, H, W), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    for name, v in (("gamma", gamma.data), ("beta", beta.data),
                    ("running_mean", running_mean), ("running_var", running_var)):
        if v.shape != (channels,):
            raise ValueError(f"batch_norm: {name} has shape {tuple(v.shape)} but x has {channels} "
                             f"channels, so it must be ({channels},)")
    if training and x.data.size // max(channels, 1) < 2:
        raise ValueError(f"batch_norm in training mode needs more than one value per channel, "
                         f"got input of shape {tuple(x.shape)}")
