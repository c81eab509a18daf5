"""Softmax cross-entropy, computed stably and differentiated in closed form."""
import numpy as np

from .autograd import Tensor
from .device import same_device, xp_of


def cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[label], as PyTorch's F.cross_entropy.

    logits: (N, K) scores; labels: (N,) integers in [0, K).
    Subtracting each row's max before exp() changes nothing mathematically and
    keeps exp() from overflowing. The gradient is (softmax - onehot) / N.

    Labels outside [0, K) raise ValueError when they are on the host. On the
    GPU, checking them would make the host wait for the device every step, and
    CuPy would silently wrap such an index around; there the loss and its
    gradient become NaN instead, so a bad label never gives a plausible number.
    """
    labels = labels.data if isinstance(labels, Tensor) else labels
    xp = xp_of(logits.data)
    if not hasattr(labels, "dtype"):
        labels = xp.asarray(labels)
    _check(logits, labels)
    n, k = logits.shape
    z = logits.data - logits.data.max(axis=1, keepdims=True)
    log_probs = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    rows = xp.arange(n)
    outside = (labels < 0) | (labels >= k)
    cols = xp.where(outside, 0, labels)
    poison = xp.where(outside.any(), xp.nan, 0).astype(log_probs.dtype)  # NaN if a label is bad
    loss = -log_probs[rows, cols].mean() + poison

    def backward(g):
        d = xp.exp(log_probs)
        d[rows, cols] -= 1
        return (d * (g / n + poison),)
    return Tensor.from_op(loss, (logits,), backward, "cross_entropy")


def _check(logits, labels):
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy wants logits of shape (N, classes), got {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy wants labels of shape ({logits.shape[0]},), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy wants integer class labels, got dtype {labels.dtype}")
    same_device(logits.data, labels, op="cross_entropy")
    if not isinstance(labels, np.ndarray):
        return  # reading GPU values here would make the host wait for the device every step
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise ValueError(f"cross_entropy: labels must lie in [0, {logits.shape[1]}), "
                         f"got values from {int(labels.min())} to {int(labels.max())}")
