"""Keep freed memory for reuse instead of handing it back to the operating system.

A training step allocates the same large arrays every time (the unfolded
matrices of the core's convolution, see cpu/conv.py) and frees them at the end.
By default glibc serves such large requests with fresh pages from the kernel
and returns them on free; the kernel must then zero every page on first
touch, which made im2col ~1.7x slower here (29 ms against 17 ms). Raising
glibc's mmap and trim thresholds makes freed blocks stay in the heap, so the
next step reuses them.

PyTorch does the same with its caching allocators. This changes no numbers,
only speed. It is one explicit call, never a side effect of an import: the
setting lasts for the whole process (a learner's Jupyter kernel included), so
the code that wants the speed says so, through tinyresnet.cpu.install().

Set TINYRESNET_KEEP_MEMORY=0 to make the call leave the allocator alone. It
tunes the host's allocator only; on the GPU, CuPy keeps freed device memory
in its own pool anyway.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory():
    """Tell glibc to keep freed memory; True if it took effect (False off Linux/glibc)."""
    if not sys.platform.startswith("linux") or os.environ.get("TINYRESNET_KEEP_MEMORY") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        # -1: never trim (glibc reads it as the largest threshold)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, -1))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
