"""Will a run fit in memory? An estimate made before the net is built, so that `--depth 99998`
is refused in one line instead of failing minutes later (or being killed) when memory runs out.

A training step keeps, for the backward pass, a few arrays the size of each layer's output
(the convolution's output, batch norm's centered input and its output, the ReLU's output,
the unfolded input of the next convolution): about ACTIVATION_COPIES of them per layer, for
every image of the batch. The parameters have their weights, gradients and momentum buffers
and a temporary in the update. So

    bytes ~ 4 * (ACTIVATION_COPIES * batch * V + PARAMETER_COPIES * P)

where V is the number of values the convolutions and the classifier output per image, and P
the number of parameters. Both grow linearly with n (depth 6n+2): they are read from the
nets of n = 1 and n = 2 (depth 8 and 14), built and run once on one small image, and extended to
the depth asked for, so the architecture has one source, models.py. The copies are measured:
the peak traced by tracemalloc in training steps of ResNet-20, -56 and -110 on the CPU (the
speed wing installed, as a run has it) is about 4.8 copies of V per image; the plain
definitions take about as much in deep nets (tests/run/test_budget.py holds the estimate to
a measured step).
"""
import contextlib
import functools
import math
import os

import numpy as np

from .. import models
from ..device import xp_for
from ..flops import multiply_adds
from .recipe import UsageError

try:
    import resource
except ImportError:  # Windows: no address-space limit to read
    resource = None

ACTIVATION_COPIES = 5
PARAMETER_COPIES = 4
BYTES = 4  # float32


def training_bytes(depth, batch_size, residual=True, shortcut="A"):
    """About how many bytes a training step of this net takes at this batch size."""
    values, parameters = counts(depth, residual, shortcut)
    return BYTES * (ACTIVATION_COPIES * batch_size * values + PARAMETER_COPIES * parameters)


def counts(depth, residual=True, shortcut="A"):
    """(values the convolutions and the classifier output for one image, parameters) of the
    net of this depth: linear in n, from the nets with n = 1 and n = 2 (each block added to
    each stage adds the same amount)."""
    n = models.blocks_per_stage(depth)
    (v1, p1), (v2, p2) = _small_counts(residual, shortcut)
    return v1 + (n - 1) * (v2 - v1), p1 + (n - 1) * (p2 - p1)


@functools.lru_cache(maxsize=None)
def _small_counts(residual, shortcut):
    """counts() of the nets of depth 8 and 14, built (without touching the random generator
    that initializes the run's net) and run once on one 8×8 image, which is 16 times quicker
    than 32×32: every convolution's output (C, H, W) then has 1/16 of its values (each stage
    halves both sides either way), the classifier's (classes,) the same."""
    from .. import nn
    saved, nn._rng = nn._rng, np.random.default_rng(0)
    try:
        nets = [models.cifar_resnet(depth, residual, shortcut) for depth in (8, 14)]
    finally:
        nn._rng = saved
    image = np.zeros((1, 3, 8, 8), np.float32)
    return tuple((sum(math.prod(shape) * (16 if len(shape) == 3 else 1)
                      for _, shape, _ in multiply_adds(net, image)), net.num_parameters())
                 for net in nets)


def available_bytes(device):
    """The memory a run can still take: on the GPU the device's free memory; on the CPU the
    least of the memory the system has available, this process's address-space limit (ulimit
    -v) and its container's limit. None when it cannot be told."""
    if device == "gpu":
        free_and_total = getattr(xp_for("gpu").cuda.runtime, "memGetInfo", None)
        return free_and_total()[0] if free_and_total else None
    limits = [_meminfo_available()]
    soft = resource.getrlimit(resource.RLIMIT_AS)[0] if resource else None
    if soft is not None and soft != resource.RLIM_INFINITY:
        limits.append(soft - _address_space())
    limits.append(_container_left())
    limits = [b for b in limits if b is not None]
    return min(limits) if limits else None


def _meminfo_available(path="/proc/meminfo"):
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(path) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    return None


def _address_space():
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    return 0


def _container_left():
    """What the container (cgroup v2 or v1) still allows, or None if it sets no limit."""
    for limit, used in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        with contextlib.suppress(OSError, ValueError):
            with open(limit) as f, open(used) as g:
                text = f.read().strip()
                if text == "max" or int(text) >= 1 << 60:  # v1 writes "no limit" as a huge number
                    return None
                return int(text) - int(g.read())
    return None


def check_fits(recipe, available=None):
    """UsageError, in one line, when the recipe's net cannot train in the memory there is
    (available: bytes, default available_bytes(recipe.device))."""
    available = available_bytes(recipe.device) if available is None else available
    if available is None:
        return
    needed = training_bytes(recipe.depth, recipe.batch_size, recipe.residual, recipe.shortcut)
    if needed > available:
        where = "the GPU has" if recipe.device == "gpu" else "this machine has"
        raise UsageError(
            f"--depth {recipe.depth} --batch-size {recipe.batch_size}: training {recipe.label} "
            f"({counts(recipe.depth, recipe.residual, recipe.shortcut)[1]:,} parameters) takes about "
            f"{size(needed)} of memory, and {where} {size(available)} available; give a smaller --depth "
            "or --batch-size")


def size(n):
    """1.3e12 -> '1.3 TB'."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
