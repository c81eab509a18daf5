"""Time conv2d forward + backward at the three ResNet-CIFAR layer shapes, against PyTorch.

    python benchmarks/conv.py [--device cpu|gpu] [--repeats 10]

N=128, 3×3 kernels, stride 1, padding 1: 16×32×32, 32×16×16, 64×8×8.
Prints the median time of each and tinyresnet's time as a multiple of PyTorch's.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tinyresnet import Tensor  # noqa: E402
from tinyresnet.device import DeviceError, xp_for
from tinyresnet.functional import conv2d
from tinyresnet.device import channels_last_zeros  # noqa: E402
import tinyresnet.cpu  # noqa: E402
from timing import median_seconds  # noqa: E402

SHAPES = ((16, 32), (32, 16), (64, 8))


def tinyresnet_step(xp, x, w, g):
    """One forward + backward, with x and g laid out as activations are inside a net."""
    def step():
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        conv2d(xt, wt, stride=1, padding=1).backward(g)
    return step


def torch_step(torch, device, x, w, g):
    tx = torch.tensor(x, device=device, requires_grad=True)
    tw = torch.tensor(w, device=device, requires_grad=True)
    tg = torch.tensor(g, device=device)

    def step():
        tx.grad = tw.grad = None
        torch.nn.functional.conv2d(tx, tw, padding=1).backward(tg)
    return step


def as_activation(xp, array):
    out = channels_last_zeros(xp, array.shape, array.dtype)
    out[...] = xp.asarray(array)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    tinyresnet.cpu.install()  # as training does; PyTorch here shares the allocator setting
    try:
        xp = xp_for(args.device)
    except DeviceError as e:
        sys.exit(f"benchmarks/conv.py: {e}")
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch not installed: printing tinyresnet times only")
    sync = xp.cuda.Device().synchronize if args.device == "gpu" else (lambda: None)
    print(f"conv2d forward+backward, N=128, 3x3, device={args.device}")
    print(f"{'shape':>10} {'tinyresnet ms':>14} {'pytorch ms':>11} {'ratio':>6}")
    for c, hw in SHAPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((128, c, hw, hw), dtype=np.float32)
        w = rng.standard_normal((c, c, 3, 3), dtype=np.float32) * 0.1
        g = rng.standard_normal((128, c, hw, hw), dtype=np.float32)
        ours = median_seconds(tinyresnet_step(xp, as_activation(xp, x), xp.asarray(w), as_activation(xp, g)),
                              args.repeats, sync)
        line = f"{c:>4}x{hw}x{hw} {ours * 1e3:14.1f}"
        if torch is not None:
            tdev = "cuda" if args.device == "gpu" else "cpu"
            tsync = torch.cuda.synchronize if tdev == "cuda" else (lambda: None)
            theirs = median_seconds(torch_step(torch, tdev, x, w, g), args.repeats, tsync)
            line += f" {theirs * 1e3:11.1f} {ours / theirs:6.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
