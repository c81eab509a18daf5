"""Lesson 04: softmax cross-entropy and its gradient, computed stably."""
import numpy as np


def softmax_cross_entropy(logits, labels):
    """logits: (N, K), labels: (N,) ints. Returns (loss, dlogits): the batch mean of
    -log softmax(logits)[label] (a float) and its gradient dL/dlogits (N, K)."""
    n = logits.shape[0]
    # 1. subtract each row's largest score: softmax(z - m) = softmax(z), and now every exponent
    #    is <= 0, so exp() cannot overflow; the largest term of each sum is exactly 1
    z = logits - logits.max(axis=1, keepdims=True)
    # 2. log softmax = z - log(sum_j exp(z_j)), a row at a time (axis 1: the classes)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    # 3. the loss: minus the log-probability of the right class, averaged over the batch
    loss = -log_p[rows, labels].mean()
    # 4. d(-log p_y)/dz_k = p_k - [k == y]: softmax minus the one-hot label, / N for the mean
    dlogits = np.exp(log_p)
    dlogits[rows, labels] -= 1
    return float(loss), dlogits / n
