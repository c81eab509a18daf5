"""Lesson 03: batch normalization, the forward pass (training and evaluation mode, running
statistics) and the backward pass in training mode.

The two functions work on plain arrays (NumPy, or CuPy: only array methods are used) and fit
together: batch_norm_forward returns the xhat and inv_std that batch_norm_backward takes.
"""


def per_channel(v):
    """(C,) -> (1, C, 1, 1), to broadcast a per-channel vector against (N, C, H, W)."""
    return v.reshape(1, -1, 1, 1)


def batch_norm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Batch norm of x: (N, C, H, W) per channel, scaled by gamma and shifted by beta: (C,).

    training=True: normalize with the batch's mean and biased variance over axes (0, 2, 3), and
        update running_mean and running_var: (C,) IN PLACE, in PyTorch's convention:
            running = (1 - momentum) * running + momentum * batch_statistic,
        with the batch's unbiased variance (times m / (m - 1), m = N*H*W) for running_var.
    training=False: normalize with running_mean and running_var, which are left unchanged, so
        an image's output does not depend on the rest of its batch.

    Returns (out, xhat, inv_std):
        out:     (N, C, H, W), gamma * xhat + beta, the layer's output;
        xhat:    (N, C, H, W), the normalized input (x - mean) * inv_std, before gamma and beta;
        inv_std: (C,), 1 / sqrt(var + eps) of the statistics used (the batch's in training mode,
                 the running ones in evaluation mode).
    xhat and inv_std are what batch_norm_backward(g, xhat, gamma, inv_std) needs in training mode.
    In evaluation mode the statistics are constants and dx is simply g * gamma * inv_std.
    """
    axes = (0, 2, 3)                              # a channel's values: every image, every pixel
    if training:
        m = x.size // x.shape[1]                  # values per channel, N*H*W
        if m < 2:
            raise ValueError(f"training mode needs more than one value per channel, got x of shape {x.shape}")
        mean = x.mean(axis=axes)                  # (C,)
        var = x.var(axis=axes)                    # (C,), biased: divides by m
        # [...] = writes into the caller's arrays (a plain `=` would only rebind the local name)
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        running_var[...] = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
    else:
        mean, var = running_mean, running_var     # fixed statistics, estimated during training
    inv_std = (var + eps) ** -0.5                 # (C,)
    xhat = (x - per_channel(mean)) * per_channel(inv_std)
    out = per_channel(gamma) * xhat + per_channel(beta)
    return out, xhat, inv_std


def batch_norm_backward(g, xhat, gamma, inv_std):
    """g, xhat: (N, C, H, W); gamma, inv_std: (C,). Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    axes = (0, 2, 3)                   # statistics are per channel: over the batch and the pixels
    m = g.size // g.shape[1]           # values per channel, N*H*W

    # y = gamma * xhat + beta: beta is added to every value of its channel, gamma multiplies xhat
    dbeta = g.sum(axis=axes)
    dgamma = (g * xhat).sum(axis=axes)
    # dx = gamma/sigma * (g - mean(g) - xhat * mean(g * xhat)); the two means are the paths
    # through the batch mean and variance, and dbeta/m, dgamma/m are exactly those means
    dx = per_channel(gamma * inv_std) * (g - per_channel(dbeta / m) - xhat * per_channel(dgamma / m))
    return dx, dgamma, dbeta
