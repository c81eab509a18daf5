"""Elementwise passes at the speed of NumPy's vector loops.

NumPy runs `maximum(a, b)` in SIMD only when both operands are contiguous
runs of floats. Against the number 0 it falls back to a slow loop: max(x, 0)
over an 8 MB activation took 0.63 ms here, against 0.26 ms for the same
numbers computed over the array's memory viewed as rows of ROW floats, each
compared with one row of zeros. relu is one such pass per layer, forward.
"""
import math

import numpy as np

from .device import xp_of

ROW = 1024  # floats per row of memory_rows' view


def positive_part(a):
    """max(a, 0) elementwise, as a new array stored like a: the same numbers as xp.maximum(a, 0)."""
    xp = xp_of(a)
    out = xp.empty_like(a)
    rows, rows_out = memory_rows(a), memory_rows(out)
    if rows is None or rows_out is None:
        return xp.maximum(a, 0, out=out)
    xp.maximum(rows, xp.zeros(rows.shape[1], dtype=a.dtype), out=rows_out)
    return out


def memory_rows(a):
    """a's memory as a 2-D view (size/T, T), T up to ROW, whatever order its axes are stored in
    (channels-last included); None if a is not one dense block."""
    if a.ndim == 0:
        return None
    stored = a.transpose(np.argsort(a.strides)[::-1])  # axes from the slowest-moving to the fastest
    if not stored.flags.c_contiguous:
        return None
    return stored.reshape(-1, math.gcd(a.size, ROW))
