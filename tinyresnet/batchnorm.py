"""Batch normalization (Ioffe & Szegedy 2015) with its closed-form backward pass."""
from .autograd import Tensor
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
    mean = _channel_sum(xp, x.data) / m if training else running_mean
    centered = x.data - _bc(mean)
    var = _channel_dot(xp, centered, centered) / m if training else running_var
    inv_std = 1 / xp.sqrt(var + eps)
    scale = gamma.data * inv_std  # gamma * xhat == scale * centered: one multiply, not two
    out = centered * _bc(scale)
    out += _bc(beta.data)
    if training:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * (m / (m - 1))

    def backward(g):
        dbeta = _channel_sum(xp, g)
        dgamma = _channel_dot(xp, g, centered) * inv_std  # sum of g * xhat
        if not x.requires_grad:
            return None, dgamma, dbeta
        if not training:
            return g * _bc(scale), dgamma, dbeta
        # dx = gamma/std * (g - mean(g) - xhat * mean(g * xhat)): the last two terms are
        # the paths through the batch mean and variance, which depend on every x
        dx = centered * _bc(-dgamma * inv_std / m)
        dx += _bc(-dbeta / m)
        dx += g
        dx *= _bc(scale)
        return dx, dgamma, dbeta
    return Tensor.from_op(out, (x, gamma, beta), backward, "batch_norm")


def _channel_sum(xp, a):
    """sum over N, H, W per channel: (N, C, H, W) -> (C,). einsum is ~3x faster than
    a.sum(axis=(0, 2, 3)) when channels are last in memory."""
    return xp.einsum("nchw->c", a)


def _channel_dot(xp, a, b):
    """sum over N, H, W of a * b, per channel: (N, C, H, W) x2 -> (C,), without a temporary."""
    return xp.einsum("nchw,nchw->c", a, b)


def _bc(v):
    """A per-channel vector (C,) shaped (1, C, 1, 1) to broadcast against (N, C, H, W)."""
    return v.reshape(1, -1, 1, 1)
