"""Split work into chunks and run them on every CPU core at once.

NumPy releases Python's lock (the GIL) while it copies arrays and while BLAS
multiplies matrices, so plain Python threads can keep all cores busy when each
one works on its own chunk (each takes the next one when it is done). BLAS
must then use one thread per call, or the threads would fight over the
cores: threadpoolctl (optional) sets that while the chunks run. Without
threadpoolctl, or on one core, the chunks run one after the other and BLAS
threads each product itself.

Chunks also keep work in cache: conv.py multiplies a few images' unfolded
patches (conv.CHUNK_BYTES) while they are still in the core's cache, and the
elementwise passes go over blocks of BLOCK_FLOATS.
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .machine import CORES as THREADS  # one thread per core this process may run on

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # optional: without it, chunks run one after the other
    ThreadpoolController = None

BLOCK_FLOATS = 131072  # 512 KB of float32: three arrays' blocks fit a core's 2 MB cache
_pool, _blas, _local = None, None, threading.local()


def map_chunks(fn, n, chunk):
    """[fn(start, stop) for each range of `chunk` consecutive indices covering 0..n-1], in order.

    The calls run on all cores at once when there are several chunks (fn must
    then only write to its own part of any shared output), else one by one.
    The calling thread works too, and each thread takes the next chunk as soon
    as it is free, so a core that gets interrupted does not hold the other up.
    """
    ranges = [(start, min(start + chunk, n)) for start in range(0, n, chunk)]
    if len(ranges) < 2 or THREADS < 2 or ThreadpoolController is None:
        return [fn(start, stop) for start, stop in ranges]
    results, todo, lock = [None] * len(ranges), iter(range(len(ranges))), threading.Lock()

    def work():
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            results[i] = fn(*ranges[i])
    with _one_blas_thread():
        helpers = [_threads().submit(work) for _ in range(THREADS - 1)]
        try:
            work()
        finally:
            for helper in helpers:
                helper.result()
    return results


def map_row_blocks(fn, rows):
    """map_chunks over blocks of consecutive rows a..b of a 2-D array, about BLOCK_FLOATS
    floats each: a size that stays in a core's cache while several operations go over it."""
    return map_chunks(fn, rows.shape[0], max(1, BLOCK_FLOATS // max(1, rows.shape[1])))


def scratch(shape, dtype, kind="any"):
    """A reusable array of this shape for the calling thread.

    Chunks reuse one buffer each instead of allocating (and page-faulting) a
    fresh megabyte for every chunk of every layer. A buffer starts as zeros
    and keeps whatever its users write; users that rely on some entries
    staying zero (a padded border) pass a `kind` of their own.
    """
    key = (tuple(shape), np.dtype(dtype), kind)
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    if key not in buffers:
        buffers[key] = np.zeros(shape, dtype)
    return buffers[key]


def _threads():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="tinyresnet")
    return _pool


class _one_blas_thread:
    """BLAS limited to one thread per call inside the block, as it was after."""

    def __enter__(self):
        global _blas
        if _blas is None:
            _blas = ThreadpoolController().select(user_api="blas")
        self.limit = _blas.limit(limits=1)
        self.limit.__enter__()

    def __exit__(self, *exc):
        self.limit.__exit__(*exc)
