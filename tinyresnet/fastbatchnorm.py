"""Batch norm's passes, faster on a CPU: the same numbers, a block of memory at a time.

batchnorm.py's passes make one trip over the whole array per operation: x - mean, then the
sum of its squares, then × scale, then + shift, each reading (and most writing) 8 MB at the
first stage of a CIFAR ResNet at batch 128. Here the arrays, stored channels-last and viewed
as rows of memory (channels.as_rows), are cut into blocks of 512 KB (parallel.map_row_blocks);
every operation of a pass is done on one block, while it is in the core's cache, before the
next block, and the blocks run on all cores. Sums are added block by block, in order, so the
result does not depend on which core did what.
"""
import numpy as np

from .channels import as_rows, tiled
from .parallel import map_row_blocks

ENABLED = True   # False: batch norm runs batchnorm.py's definitions on the CPU too


def statistics(xp, x):
    """Per channel: the mean and the (biased) variance of x: (N, C, H, W), and x - mean."""
    rows, m = as_rows(x), x.size // x.shape[1]
    mean = _per_channel(map_row_blocks(lambda a, b: np.einsum("rt->t", rows[a:b]), rows), x) / m
    centered = np.empty_like(x)
    crows, row_mean = as_rows(centered), tiled(np, mean, x, rows)

    def center(a, b):
        np.subtract(rows[a:b], row_mean, out=crows[a:b])
        return np.einsum("rt,rt->t", crows[a:b], crows[a:b])
    return mean, _per_channel(map_row_blocks(center, rows), x) / m, centered


def normalize(xp, a, scale, shift):
    """a * scale + shift per channel."""
    rows, out = as_rows(a), np.empty_like(a)
    orows, row_scale, row_shift = as_rows(out), tiled(np, scale, a, rows), tiled(np, shift, a, rows)

    def block(i, j):
        np.multiply(rows[i:j], row_scale, out=orows[i:j])
        orows[i:j] += row_shift
    map_row_blocks(block, rows)
    return out


def gradient_sums(xp, g, centered):
    """Per channel: sum of g, and sum of g * centered."""
    grows, crows = as_rows(g), as_rows(centered)
    sums, dots = zip(*map_row_blocks(lambda a, b: (np.einsum("rt->t", grows[a:b]),
                                                   np.einsum("rt,rt->t", grows[a:b], crows[a:b])), grows))
    return _per_channel(sums, g), _per_channel(dots, g)


def input_gradient(xp, g, centered, k, shift, scale):
    """(g + centered * k + shift) * scale, per channel: dx of training-mode batch norm."""
    grows, crows, dx = as_rows(g), as_rows(centered), np.empty_like(centered)
    drows = as_rows(dx)
    row_k, row_shift, row_scale = (tiled(np, v, g, grows) for v in (k, shift, scale))

    def block(a, b):
        d = drows[a:b]
        np.multiply(crows[a:b], row_k, out=d)
        d += row_shift
        d += grows[a:b]
        d *= row_scale
    map_row_blocks(block, grows)
    return dx


def _per_channel(row_sums, a):
    """Per-block sums over rows, each (T,) with T a multiple of C -> one total per channel (C,)."""
    return sum(row_sums).reshape(-1, a.shape[1]).sum(axis=0)
