"""Lesson 03: the backward pass of batch normalization in training mode."""


def batch_norm_backward(g, xhat, gamma, inv_std):
    """g, xhat: (N, C, H, W); gamma, inv_std: (C,). Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    axes = (0, 2, 3)                   # statistics are per channel: over the batch and the pixels
    m = g.size // g.shape[1]           # values per channel, N*H*W

    def per_channel(v):                # (C,) -> (1, C, 1, 1), to broadcast against (N, C, H, W)
        return v.reshape(1, -1, 1, 1)

    # y = gamma * xhat + beta: beta is added to every value of its channel, gamma multiplies xhat
    dbeta = g.sum(axis=axes)
    dgamma = (g * xhat).sum(axis=axes)
    # dx = gamma/sigma * (g - mean(g) - xhat * mean(g * xhat)); the two means are the paths
    # through the batch mean and variance, and dbeta/m, dgamma/m are exactly those means
    dx = per_channel(gamma * inv_std) * (g - per_channel(dbeta / m) - xhat * per_channel(dgamma / m))
    return dx, dgamma, dbeta
