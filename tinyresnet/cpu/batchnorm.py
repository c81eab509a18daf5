"""Batch norm's four passes, faster on a CPU: the same numbers, a block of memory at a time.

The core's passes (tinyresnet/batchnorm.py) make one trip over the whole array per operation:
x - mean, then the sum of its squares, then × scale, then + shift, each reading (and most
writing) 8 MB at the first stage of a CIFAR ResNet at batch 128. Here the arrays, stored
channels-last and viewed as rows of memory (rows.as_rows), are cut into blocks
(threads.map_row_blocks); every operation of a pass is done on one block, while it is in the
core's cache, before the next block, and the blocks run on all cores. Sums are added block by
block, in order, so the result does not depend on which core did what.
"""
import numpy as np

from .rows import as_rows, per_channel_total, tiled
from .threads import map_row_blocks


def statistics(x):
    """Per channel: the mean and the (biased) variance of x: (N, C, H, W), and x - mean."""
    rows, m = as_rows(x), x.size // x.shape[1]
    mean = per_channel_total(map_row_blocks(lambda a, b: np.einsum("rt->t", rows[a:b]), rows), x) / m
    centered = np.empty_like(x)
    crows, row_mean = as_rows(centered), tiled(mean, x, rows)

    def center(a, b):
        np.subtract(rows[a:b], row_mean, out=crows[a:b])
        return np.einsum("rt,rt->t", crows[a:b], crows[a:b])
    return mean, per_channel_total(map_row_blocks(center, rows), x) / m, centered


def normalize(a, scale, shift):
    """a * scale + shift per channel."""
    rows, out = as_rows(a), np.empty_like(a)
    orows, row_scale, row_shift = as_rows(out), tiled(scale, a, rows), tiled(shift, a, rows)

    def block(i, j):
        np.multiply(rows[i:j], row_scale, out=orows[i:j])
        orows[i:j] += row_shift
    map_row_blocks(block, rows)
    return out


def gradient_sums(g, centered):
    """Per channel: sum of g, and sum of g * centered."""
    grows, crows = as_rows(g), as_rows(centered)
    sums, dots = zip(*map_row_blocks(lambda a, b: (np.einsum("rt->t", grows[a:b]),
                                                   np.einsum("rt,rt->t", grows[a:b], crows[a:b])), grows))
    return per_channel_total(sums, g), per_channel_total(dots, g)


def input_gradient(g, centered, k, shift, scale):
    """(g + centered * k + shift) * scale, per channel: dx of training-mode batch norm."""
    grows, crows, dx = as_rows(g), as_rows(centered), np.empty_like(centered)
    drows = as_rows(dx)
    row_k, row_shift, row_scale = (tiled(v, g, grows) for v in (k, shift, scale))

    def block(a, b):
        d = drows[a:b]
        np.multiply(crows[a:b], row_k, out=d)
        d += row_shift
        d += grows[a:b]
        d *= row_scale
    map_row_blocks(block, grows)
    return dx


def applies(*arrays):
    """Can these activations take the fast path: NumPy arrays, all stored channels-last?"""
    return all(isinstance(a, np.ndarray) and as_rows(a) is not None for a in arrays)
