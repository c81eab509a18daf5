"""Batch normalization (Ioffe & Szegedy 2015) with its closed-form backward pass."""
import math

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
    if training:
        mean = _channel_sum(xp, x.data) / m
        centered = _scale_shift(xp, x.data, 1, -mean)      # x - mean, kept for the backward pass
        var = _channel_dot(xp, centered, centered) / m
        inv_std = 1 / xp.sqrt(var + eps)
        scale = gamma.data * inv_std  # gamma * xhat == scale * centered: one multiply, not two
        out = _scale_shift(xp, centered, scale, beta.data)  # centered * scale + beta
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * (m / (m - 1))
    else:  # a fixed per-channel affine map: one pass, x * scale + (beta - mean * scale)
        mean, centered = running_mean, None
        inv_std = 1 / xp.sqrt(running_var + eps)
        scale = gamma.data * inv_std
        out = _scale_shift(xp, x.data, scale, beta.data - mean * scale)

    def backward(g):
        c = centered if training else _scale_shift(xp, x.data, 1, -mean)  # x - mean
        dbeta = _channel_sum(xp, g)
        dgamma = _channel_dot(xp, g, c) * inv_std  # sum of g * xhat
        if not x.requires_grad:
            return None, dgamma, dbeta
        if not training:
            return _scale_shift(xp, g, scale, 0), dgamma, dbeta
        # dx = gamma/std * (g - mean(g) - xhat * mean(g * xhat)): the last two terms are
        # the paths through the batch mean and variance, which depend on every x
        dx = _scale_shift(xp, c, -dgamma * inv_std / m, -dbeta / m)
        dx += g
        return _scale_shift(xp, dx, scale, 0, out=dx), dgamma, dbeta
    return Tensor.from_op(out, (x, gamma, beta), backward, "batch_norm")


# Per-channel arithmetic. Activations are stored channels-last (see device.py), so in memory a
# channel's values recur every C floats. Viewed as rows of T floats (T a multiple of C, up to
# ROW), a per-channel vector tiled T/C times lines up with every row: NumPy's inner loops then
# run over T floats instead of C (16 at the first stage), which is up to 3x faster here. Arrays
# stored any other way take the plain broadcasting path; both give the same numbers.
ROW = 1024


def _channel_sum(xp, a):
    """sum over N, H, W per channel: (N, C, H, W) -> (C,)."""
    rows = _rows(a)
    if rows is None:
        return xp.einsum("nchw->c", a)
    return xp.einsum("rt->t", rows).reshape(-1, a.shape[1]).sum(axis=0)


def _channel_dot(xp, a, b):
    """sum over N, H, W of a * b, per channel: (N, C, H, W) x2 -> (C,), without a temporary."""
    ra, rb = _rows(a), _rows(b)
    if ra is None or rb is None:
        return xp.einsum("nchw,nchw->c", a, b)
    return xp.einsum("rt,rt->t", ra, rb).reshape(-1, a.shape[1]).sum(axis=0)


def _scale_shift(xp, a, scale, shift, out=None):
    """a * scale + shift per channel: (N, C, H, W), with scale, shift: (C,) or numbers -> a new
    array stored like a (or `out`, which may be a itself). A scale of 1 or a shift of 0 costs
    no pass over the array."""
    out = xp.empty_like(a) if out is None else out
    rows, rows_out = _rows(a), _rows(out)
    if rows is None or rows_out is None:
        src, dst, per_channel = a, out, lambda v: _bc(xp, v, a)
    else:
        src, dst, per_channel = rows, rows_out, lambda v: _tiled(xp, v, a, rows)
    if _is(scale, 1):
        xp.add(src, per_channel(shift), out=dst)
    else:
        xp.multiply(src, per_channel(scale), out=dst)
        if not _is(shift, 0):
            dst += per_channel(shift)
    return out


def _is(v, number):
    """v is this plain number (not a per-channel array)."""
    return isinstance(v, (int, float)) and v == number


def _rows(a):
    """a: (N, C, H, W) stored channels-last, as a 2-D view (pixels*C/T, T) of its memory; or None."""
    n, c, h, w = a.shape
    stored = a.transpose(0, 2, 3, 1)
    if not stored.flags.c_contiguous:
        return None
    pixels_per_row = math.gcd(n * h * w, max(1, ROW // c))
    return stored.reshape(-1, pixels_per_row * c)


def _tiled(xp, v, a, rows):
    """A per-channel vector (or a number) repeated along one row of _rows(a)."""
    v = xp.asarray(v, dtype=a.dtype)
    return v if v.ndim == 0 else xp.tile(v, rows.shape[1] // a.shape[1])


def _bc(xp, v, a):
    """A per-channel vector (C,) (or a number) shaped (1, C, 1, 1) to broadcast against a."""
    v = xp.asarray(v, dtype=a.dtype)
    return v if v.ndim == 0 else v.reshape(1, -1, 1, 1)
