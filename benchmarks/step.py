"""Time one full training step (forward, backward, SGD) of CIFAR ResNets, against PyTorch.

    python benchmarks/step.py [--depths 20 56] [--device cpu|gpu] [--steps 5]

Each framework runs in its own child process, so each one's peak memory
(resident set size) is its own. Batch 128, float32, random 32×32 images.
"""
import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from timing import median_seconds  # noqa: E402


def tinyresnet_stepper(depth, device):
    sys.path.insert(0, str(ROOT))
    from tinyresnet import Tensor, keep_freed_memory, optim
    from tinyresnet.device import to_device, xp_for
    from tinyresnet.functional import cross_entropy
    from tinyresnet.models import cifar_resnet
    keep_freed_memory()  # as training does (memory.py)
    xp = xp_for(device)
    model = cifar_resnet(depth).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, 128)

    def step():
        opt.zero_grad()
        loss = cross_entropy(model(Tensor(to_device(x, device))), to_device(y, device))
        loss.backward()
        opt.step()
    sync = xp.cuda.Device().synchronize if device == "gpu" else (lambda: None)
    return step, sync


def torch_stepper(depth, device):
    import torch
    from torch_models import CifarResNet
    dev = "cuda" if device == "gpu" else "cpu"
    if dev == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model = CifarResNet(depth).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((128, 3, 32, 32), dtype=np.float32))
    y = torch.tensor(rng.integers(0, 10, 128))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x.to(dev)), y.to(dev)).backward()
        opt.step()
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    return step, sync


def child(framework, depth, device, steps):
    """Time `steps` steps after two warm-up steps; print a JSON line."""
    step, sync = (tinyresnet_stepper if framework == "tinyresnet" else torch_stepper)(depth, device)
    seconds = median_seconds(step, steps, sync, warmup=2)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images_per_s": 128 / seconds, "peak_mb": peak_mb}))


def measure(framework, depth, device, steps):
    cmd = [sys.executable, __file__, "--child", framework, "--depths", str(depth),
           "--device", device, "--steps", str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1]
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--child", choices=("tinyresnet", "pytorch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.depths[0], args.device, args.steps)
    sys.path.insert(0, str(ROOT))
    from tinyresnet.device import DeviceError, xp_for
    try:
        xp_for(args.device)
    except DeviceError as e:
        sys.exit(f"benchmarks/step.py: {e}")
    print(f"training step (forward, backward, SGD), batch 128, float32, device={args.device}, "
          f"median of {args.steps} steps")
    print(f"{'net':>10} {'tinyresnet img/s':>17} {'peak MB':>8} {'pytorch img/s':>14} {'peak MB':>8} {'ratio':>6}")
    for depth in args.depths:
        ours, err = measure("tinyresnet", depth, args.device, args.steps)
        if ours is None:
            sys.exit(f"benchmarks/step.py: tinyresnet failed: {err}")
        theirs, terr = measure("pytorch", depth, args.device, args.steps)
        line = f"{'ResNet-' + str(depth):>10} {ours['images_per_s']:17.1f} {ours['peak_mb']:8.0f}"
        if theirs is None:
            line += f"  (PyTorch unavailable: {terr})"
        else:
            line += (f" {theirs['images_per_s']:14.1f} {theirs['peak_mb']:8.0f}"
                     f" {ours['images_per_s'] / theirs['images_per_s']:6.2f}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
