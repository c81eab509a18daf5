"""Use every CPU core for the big copies and adds of im2col and col2im.

NumPy runs matrix products on all cores (through BLAS) but copies and adds on
one. It releases Python's global lock inside those loops, though, so threads
that each take a slice of the batch really run at the same time. On CuPy the
GPU is already parallel, so the operation is simply done whole.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

WORKERS = min(4, os.cpu_count() or 1)
_pool = ThreadPoolExecutor(WORKERS) if WORKERS > 1 else None


def copy_into(dst, src):
    """dst[...] = src, split over the first (batch) axis."""
    _by_batch(_copy, dst, src)


def add_into(dst, src):
    """dst += src, split over the first (batch) axis."""
    _by_batch(_add, dst, src)


def _copy(dst, src):
    dst[...] = src


def _add(dst, src):
    dst += src


def _by_batch(op, dst, src):
    n = len(dst)
    if _pool is None or not isinstance(dst, np.ndarray) or n < WORKERS:
        return op(dst, src)
    bounds = np.linspace(0, n, WORKERS + 1).astype(int)
    parts = [_pool.submit(op, dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    for part in parts:
        part.result()  # re-raises an error from a worker
