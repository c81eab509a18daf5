"""Every op of the engine on small float32 inputs: the table the device tests run.

test_gpu.py runs it on CuPy against NumPy; test_standin.py runs it on the
strict stand-in GPU, where no op may read a device value on the host.

Each entry is name: (op, inputs). An input is a shape (a float32 tensor that
gets a gradient) or a NumPy array (passed to the op as a plain device array:
labels, batch norm's running statistics).
"""
import contextlib

import numpy as np

from conftest import host
from tinyresnet import Tensor
from tinyresnet import functional as F
from tinyresnet.device import device_of

RUNNING = np.array([0.3, -0.2, 0.1], dtype=np.float32), np.array([0.5, 1.5, 2.0], dtype=np.float32)

OPS = {
    "add": (lambda a, b: a + b, [(2, 3, 4, 4), (1, 3, 1, 1)]),
    "sub": (lambda a, b: a - b, [(3, 4), (3, 4)]),
    "mul": (lambda a, b: a * b, [(2, 3, 4, 4), (3, 1, 1)]),
    "neg": (lambda a: -a, [(3, 4)]),
    "add-scalar": (lambda a: 2.0 * a + 1.0 - a * 0.5, [(3, 4)]),
    "matmul": (lambda a, b: a @ b, [(8, 16), (16, 5)]),
    "matmul-batched": (lambda a, b: a @ b, [(3, 4, 6), (6, 5)]),
    "matmul-vector": (lambda a, b: a @ b, [(4, 6), (6,)]),
    "reshape": (lambda a: a.reshape(6, -1), [(2, 3, 4)]),
    "transpose": (lambda a: a.transpose(2, 0, 1), [(2, 3, 4)]),
    "sum": (lambda a: a.sum(axis=(0, 2), keepdims=True), [(2, 3, 4)]),
    "sum-all": (lambda a: a.sum(), [(2, 3, 4)]),
    "mean": (lambda a: a.mean(axis=1), [(2, 3, 4)]),
    "relu": (lambda a: a.relu(), [(4, 5)]),
    "getitem": (lambda a: a[:, 1:, ::2, ::2], [(2, 3, 5, 5)]),
    "conv2d-s1-p1": (lambda x, w: F.conv2d(x, w, 1, 1), [(2, 3, 8, 8), (4, 3, 3, 3)]),
    "conv2d-s2-p1": (lambda x, w: F.conv2d(x, w, 2, 1), [(2, 3, 8, 7), (4, 3, 3, 3)]),
    "conv2d-s1-p0": (lambda x, w: F.conv2d(x, w, 1, 0), [(1, 16, 6, 6), (16, 16, 3, 3)]),
    "conv2d-1x1-s2": (lambda x, w: F.conv2d(x, w, 2, 0), [(2, 4, 6, 6), (8, 4, 1, 1)]),
    "batch_norm-train": (lambda x, g, b, m, v: F.batch_norm(x, g, b, m, v, True),
                         [(4, 3, 4, 4), (3,), (3,), *RUNNING]),
    "batch_norm-eval": (lambda x, g, b, m, v: F.batch_norm(x, g, b, m, v, False),
                        [(4, 3, 4, 4), (3,), (3,), *RUNNING]),
    "cross_entropy": (F.cross_entropy, [(6, 10), np.array([0, 9, 3, 3, 1, 5])]),
    "linear": (F.linear, [(5, 8), (3, 8), (3,)]),
    "global_avg_pool": (F.global_avg_pool, [(2, 3, 4, 4)]),
    "subsample": (F.subsample, [(2, 3, 5, 5)]),
    "pad_channels": (lambda x: F.pad_channels(x, 2, 2), [(2, 3, 4, 4)]),
}


def inputs(name, rng):
    """The op's inputs as NumPy arrays (float32 for the shapes), the same for every device."""
    arrays = [spec.copy() if isinstance(spec, np.ndarray) else rng.standard_normal(spec).astype(np.float32)
              for spec in OPS[name][1]]
    if name == "relu":
        arrays[0] += np.sign(arrays[0]) * 0.1  # away from the kink at 0
    return arrays


def run(name, arrays, xp, during=contextlib.nullcontext):
    """The op's output and the gradients of its tensor inputs on xp's device, as NumPy arrays.

    during: a context manager around the op's forward and backward pass only
    (the stand-in's strict(), say), not around moving inputs in and results out.
    """
    op, specs = OPS[name]
    args = [xp.array(a) if isinstance(spec, np.ndarray) else Tensor(xp.asarray(a), requires_grad=True)
            for a, spec in zip(arrays, specs)]
    device = "cpu" if xp is np else "gpu"
    with during():
        out = op(*args)
    upstream = xp.asarray(np.random.default_rng(1).standard_normal(out.shape).astype(np.float32))
    with during():
        out.backward(upstream)
    assert out.device == device, f"{name}: the output of an op on {device} inputs is on {out.device}"
    grads = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            assert a.grad is not None, f"{name}: argument {i} received no gradient on {device}"
            assert device_of(a.grad) == device, \
                f"{name}: argument {i}'s gradient is on {device_of(a.grad)}, not {device}"
            grads.append(host(a.grad))
    return host(out), grads
