"""Where a training step's time goes, op by op: a per-op timer for tinyresnet.

    python benchmarks/profile_step.py [--depth 56] [--steps 3] [--batch 128] [--eval]

Every op's forward call and its backward closure are timed (exclusive time: an
op that calls another op is charged only for its own part), plus the optimizer
step. Batch 128 of random 32×32 images. The GEMM rate is reported against this
machine's measured sgemm peak (a 2048×2048 product) and against the step's
theoretical multiply-adds. --eval times forward-only evaluation instead
(no graph, eval-mode batch norm), at --batch (default 500 with --eval).
"""
import argparse
import collections
import functools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tinyresnet.cpu  # noqa: E402
from tinyresnet import Tensor, autograd, functional, no_grad, optim  # noqa: E402
from tinyresnet.cpu import machine  # noqa: E402
from tinyresnet.models import cifar_resnet  # noqa: E402

TIMES = collections.Counter()
CALLS = collections.Counter()
_stack = []


def timed(name, fn):
    """fn, with its exclusive wall time added to TIMES[name]."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        _stack.append(0.0)
        try:
            return fn(*args, **kwargs)
        finally:
            inner = _stack.pop()
            total = time.perf_counter() - start
            TIMES[name] += total - inner
            CALLS[name] += 1
            if _stack:
                _stack[-1] += total
    return wrapper


def instrument():
    """Wrap the ops the CIFAR nets use, and every backward closure, with timers."""
    for name in ("conv2d", "batch_norm", "cross_entropy", "pad_channels", "global_avg_pool", "linear"):
        setattr(functional, name, timed(f"{name} forward", getattr(functional, name)))
    for method, name in (("relu", "relu"), ("__add__", "add"), ("__getitem__", "subsample"),
                         ("__mul__", "mul"), ("sum", "sum"), ("__matmul__", "matmul")):
        setattr(autograd.Tensor, method, timed(f"{name} forward", getattr(autograd.Tensor, method)))
    from_op = autograd.Tensor.from_op.__func__

    def from_op_timed(cls, data, parents, backward, op):
        return from_op(cls, data, parents, timed(f"{op} backward", backward), op)
    autograd.Tensor.from_op = classmethod(from_op_timed)
    optim.SGD.step = timed("SGD step", optim.SGD.step)


def sgemm_peak():
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(5):
        a @ a
    return 2 * 2048 ** 3 * 5 / (time.perf_counter() - start) / 1e9


def multiply_adds(depth, image=32):
    """Multiply-adds of one forward pass of one image through the convs and the FC layer."""
    n = (depth - 2) // 6
    total, size, channels = 3 * 16 * 9 * image * image, image, 16
    for stage, width in enumerate((16, 32, 64)):
        for i in range(n):
            if stage and i == 0:
                size //= 2
            total += (channels + width) * width * 9 * size * size
            channels = width
    return total + 64 * 10


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=56)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--eval", action="store_true", help="time forward-only evaluation instead")
    args = p.parse_args()
    batch = args.batch or (500 if args.eval else 128)
    tinyresnet.cpu.install()
    model = cifar_resnet(args.depth)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, batch)

    def step():
        if args.eval:
            model.eval()
            with no_grad():
                model(Tensor(x))
            return
        opt.zero_grad()
        functional.cross_entropy(model(Tensor(x)), y).backward()
        opt.step()
    step()
    step()
    instrument()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    peak = sgemm_peak()
    macs = multiply_adds(args.depth) * batch * (1 if args.eval else 3)
    what = "evaluation (forward only)" if args.eval else "training step"
    print(f"ResNet-{args.depth} {what}, batch {batch}: {seconds * 1e3:.0f} ms per step "
          f"({batch / seconds:.0f} images/s), mean of {args.steps} steps")
    print(f"  on {machine.cpu()}; NumPy's matrix kernels: {machine.kernels()}")
    print(f"  {macs / 1e9:.1f} G multiply-adds per step; at the measured sgemm peak of {peak:.0f} GFLOP/s "
          f"the step would take {2 * macs / peak / 1e6:.0f} ms; this is {2 * macs / seconds / 1e9:.0f} GFLOP/s")
    per_step = {k: v / args.steps for k, v in TIMES.items()}
    accounted = sum(per_step.values())
    print(f"  {'op':<26}{'ms/step':>9}{'share':>8}{'calls':>7}")
    for name, t in sorted(per_step.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<26}{t * 1e3:9.1f}{t / seconds:8.1%}{CALLS[name] // args.steps:7d}")
    print(f"  {'(outside the ops)':<26}{(seconds - accounted) * 1e3:9.1f}{(seconds - accounted) / seconds:8.1%}")


if __name__ == "__main__":
    main()
