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

    A row of logits that holds +inf, or is all -inf, has no softmax (its max
    minus itself is inf - inf, NaN). On the host it raises ValueError; the check
    reads the row maxima that the stable formula computes anyway (N numbers,
    not N*K). On the GPU it is skipped, for the labels' reason, and the loss is
    NaN, which the training loop stops on when it next reads the loss. A -inf
    logit in a row with a finite max is a class of probability 0, as in
    PyTorch. NaN logits come from upstream (a diverged net) and give a NaN loss
    quietly, as through every other op: the training loop stops on that too.
    """
    labels = labels.data if isinstance(labels, Tensor) else labels
    xp = xp_of(logits.data)
    if not hasattr(labels, "dtype"):
        labels = xp.asarray(labels)
    _check(logits, labels)
    n, k = logits.shape
    row_max = logits.data.max(axis=1, keepdims=True)
    _check_row_max(row_max)
    z = logits.data - row_max
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
    if 0 in logits.shape:  # a mean over no examples is 0/0; a softmax over no classes has no max
        raise ValueError(f"cross_entropy needs at least one example and one class, got logits of shape {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy wants labels of shape ({logits.shape[0]},), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy wants integer class labels, got dtype {labels.dtype}")
    same_device(logits.data, labels, op="cross_entropy")
    if not isinstance(labels, np.ndarray):
        return  # reading GPU values here would make the host wait for the device every step
    if int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]:
        raise ValueError(f"cross_entropy: labels must lie in [0, {logits.shape[1]}), "
                         f"got values from {int(labels.min())} to {int(labels.max())}")


def _check_row_max(row_max):
    """ValueError for a row whose max is infinite: it holds +inf, or is all -inf (host logits only)."""
    if not isinstance(row_max, np.ndarray):
        return  # reading GPU values here would make the host wait for the device every step
    infinite = np.isinf(row_max[:, 0])  # NaN is not infinite: it passes on, see cross_entropy
    if infinite.any():
        i = int(infinite.argmax())
        what = "holds +inf" if row_max[i, 0] > 0 else "is all -inf"
        raise ValueError(f"cross_entropy: row {i} of the logits {what}, which has no softmax (inf - inf is NaN)")
