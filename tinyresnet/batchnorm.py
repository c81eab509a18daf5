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

Ghost batch norm (Hoffer et al. 2017): with ghost_batch=B, training mode normalizes each B-image
slice of the minibatch on its own, x[0:B], x[B:2B], ..., exactly as B images on one of the
paper's two GPUs were normalized without seeing the other GPU's images. Each slice goes
through the same four passes; gamma and beta are shared, so their gradients are the sums over
the slices. The running statistics move once per minibatch, towards the slices' average mean
and average (unbiased) variance, for two reasons: the momentum keeps its meaning (one update
per step, the same memory as without slices), and it is what data-parallel ranks get when
each updates its statistics from its own slice and the ranks average them (a mean of the
updates is the update by the mean), so one process with slices of B computes what N ranks
of B images each compute.
"""
from .autograd import Tensor
from .device import as_float, same_device, xp_of


def batch_norm(x, gamma, beta, running_mean, running_var, training,
               momentum=0.1, eps=1e-5, ghost_batch=None):
    """Normalize x: (N, C, H, W) per channel, then scale by gamma and shift by beta: (C,).

    training=True uses the batch's mean and (biased) variance and updates the
    running statistics in place, as PyTorch does:
        running = (1 - momentum) * running + momentum * batch_stat   (unbiased variance)
    ghost_batch=B (ghost batch norm, training only): the batch is x[0:B], x[B:2B], ... (the last
    slice may be shorter), each normalized with its own statistics; batch_stat is then the
    slices' average. ghost_batch=None, or B >= N: the whole minibatch, one slice.
    training=False uses the running statistics, so an image's output does not
    depend on the rest of its batch.
    """
    _check(x, gamma, beta, running_mean, running_var, training, ghost_batch)
    xp, data = xp_of(x.data), as_float(x.data)
    if not training:  # a fixed per-channel affine map: x * scale + (beta - mean * scale)
        inv_std = 1 / xp.sqrt(running_var + eps)
        scale = gamma.data * inv_std
        out = normalize(data, scale, beta.data - running_mean * scale)

        def backward(g):
            dbeta, g_dot_c = gradient_sums(g, data - per_channel(running_mean))
            dgamma = g_dot_c * inv_std  # sum of g * xhat
            if not x.requires_grad:
                return None, dgamma, dbeta
            return g * per_channel(scale), dgamma, dbeta  # the statistics are constants
        return Tensor.from_op(out, (x, gamma, beta), backward, "batch_norm")

    bounds = slices(len(data), ghost_batch)
    parts = [normalized(data[a:b], gamma.data, beta.data, eps) for a, b in bounds]
    out = parts[0][0] if len(parts) == 1 else joined(data, [p[0] for p in parts])
    running_mean *= 1 - momentum
    running_mean += average([momentum * mean for _, mean, _, _, _ in parts])
    running_var *= 1 - momentum
    running_var += average([momentum * var * (m / (m - 1)) for _, _, var, m, _ in parts])

    def backward(g):
        grads = [slice_backward(g[a:b], part, x.requires_grad) for (a, b), part in zip(bounds, parts)]
        dgamma, dbeta = total([gs[1] for gs in grads]), total([gs[2] for gs in grads])
        if not x.requires_grad:
            return None, dgamma, dbeta
        dx = grads[0][0] if len(grads) == 1 else joined(data, [gs[0] for gs in grads])
        return dx, dgamma, dbeta
    return Tensor.from_op(out, (x, gamma, beta), backward, "batch_norm")


def normalized(data, gamma, beta, eps):
    """Training-mode batch norm of one slice: (out, mean, biased var, values per channel, what
    backward keeps: centered = x - mean, inv_std and scale)."""
    xp = xp_of(data)
    m = data.size // data.shape[1]  # values per channel
    mean, var, centered = statistics(data)  # centered = x - mean, kept for backward
    inv_std = 1 / xp.sqrt(var + eps)
    scale = gamma * inv_std  # gamma * xhat == scale * centered: one multiply, not two
    return normalize(centered, scale, beta), mean, var, m, (centered, inv_std, scale)


def slice_backward(g, part, input_gradient_needed):
    """(dx or None, dgamma, dbeta) of one slice, from its upstream gradient g and its forward part."""
    _, _, _, m, (centered, inv_std, scale) = part
    dbeta, g_dot_c = gradient_sums(g, centered)
    dgamma = g_dot_c * inv_std  # sum of g * xhat
    if not input_gradient_needed:
        return None, dgamma, dbeta
    return input_gradient(g, centered, -dgamma * inv_std / m, -dbeta / m, scale), dgamma, dbeta


def slices(n, size):
    """[(start, stop)] of the slices of a batch of n: one when size is None or >= n."""
    size = n if size is None else size
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def total(vectors):
    """The sum of per-channel vectors, added in order (one vector: itself, unchanged)."""
    result = vectors[0]
    for v in vectors[1:]:
        result = result + v
    return result


def average(vectors):
    """The mean of per-channel vectors (one vector: itself, unchanged)."""
    return vectors[0] if len(vectors) == 1 else total(vectors) / len(vectors)


def joined(like, pieces):
    """The slices' results put back together along the batch axis, in like's memory layout."""
    out = xp_of(like).empty_like(like)
    start = 0
    for piece in pieces:
        out[start:start + len(piece)] = piece
        start += len(piece)
    return out


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


def _check(x, gamma, beta, running_mean, running_var, training, ghost_batch=None):
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
    if ghost_batch is not None and not (isinstance(ghost_batch, int) and ghost_batch >= 1):
        raise ValueError(f"batch_norm: ghost_batch must be a whole number of images >= 1, got {ghost_batch!r}")
    if training:
        smallest = min(b - a for a, b in slices(x.shape[0], ghost_batch)) if x.shape[0] else 0
        if smallest * (x.data.size // max(x.shape[0] * channels, 1)) < 2:
            where = f" in a slice of {smallest} (ghost_batch={ghost_batch})" if ghost_batch else ""
            raise ValueError(f"batch_norm in training mode needs more than one value per channel{where}, "
                             f"got input of shape {tuple(x.shape)}")
