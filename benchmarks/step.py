"""Time a training step and evaluation of CIFAR ResNets, against PyTorch, with peak memory.

    python benchmarks/step.py [--depths 20 56] [--device cpu|gpu] [--steps 5] [--pairs 3]

For each net, three figures, each as tinyresnet against PyTorch on the same machine:
  * a training step (forward, backward, SGD) at batch 128: images/s;
  * the peak memory of those steps: MB; on the CPU the resident memory of the process that ran them,
    on the GPU the device memory each framework's pool held (CuPy's and PyTorch's pools both keep
    freed blocks, so what they hold at the end is their peak);
  * evaluation (forward only, eval-mode batch norm, no graph; PyTorch under torch.no_grad())
    at --eval-batch (default 500): images/s.
Each framework runs in its own child process (so each peak memory is its own), and the two
alternate --pairs times, so that a busy moment of the machine hits both. Medians over the
pairs are printed, with the range; float32, random 32×32 images. The first lines say which
matrix kernels each side ran (tinyresnet/cpu/machine.py), with a warning when their vector widths
differ.
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from timing import median_seconds  # noqa: E402

BATCH = 128


def tinyresnet_steppers(depth, device, eval_batch):
    sys.path.insert(0, str(ROOT))
    from tinyresnet import Tensor, no_grad, optim
    from tinyresnet.device import to_device, xp_for
    from tinyresnet.functional import cross_entropy
    from tinyresnet.models import cifar_resnet
    import tinyresnet.cpu
    tinyresnet.cpu.install()  # as training does (TINYRESNET_DEFINITIONS=1 times the definitions)
    xp = xp_for(device)
    model = cifar_resnet(depth).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    x_eval = rng.standard_normal((eval_batch, 3, 32, 32), dtype=np.float32)

    def step():
        opt.zero_grad()
        loss = cross_entropy(model(Tensor(to_device(x, device))), to_device(y, device))
        loss.backward()
        opt.step()

    def evaluate():
        model.eval()
        with no_grad():
            model(Tensor(to_device(x_eval, device)))
        model.train()
    sync = xp.cuda.Device().synchronize if device == "gpu" else (lambda: None)
    return step, evaluate, sync


def torch_steppers(depth, device, eval_batch):
    import torch
    from torch_models import CifarResNet
    dev = "cuda" if device == "gpu" else "cpu"
    if dev == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model = CifarResNet(depth).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((BATCH, 3, 32, 32), dtype=np.float32))
    y = torch.tensor(rng.integers(0, 10, BATCH))
    x_eval = torch.tensor(rng.standard_normal((eval_batch, 3, 32, 32), dtype=np.float32))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x.to(dev)), y.to(dev)).backward()
        opt.step()

    def evaluate():
        model.eval()
        with torch.no_grad():
            model(x_eval.to(dev))
        model.train()
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    return step, evaluate, sync


def child(framework, depth, device, steps, eval_batch):
    """Time `steps` training steps (after two warm-up steps), read the peak memory, then time
    evaluation; print one JSON line."""
    make = tinyresnet_steppers if framework == "tinyresnet" else torch_steppers
    step, evaluate, sync = make(depth, device, eval_batch)
    train_seconds = median_seconds(step, steps, sync, warmup=2)
    peak_mb = peak_memory_mb(framework, device)
    eval_seconds = median_seconds(evaluate, max(2, steps // 2), sync, warmup=1)
    print(json.dumps({"train": BATCH / train_seconds, "peak_mb": peak_mb, "eval": eval_batch / eval_seconds,
                      "kernels": kernels(framework, device)}))


def peak_memory_mb(framework, device):
    """The most memory this child's steps held: the process's resident memory on the CPU, the
    device memory its framework's pool holds on the GPU."""
    if device == "cpu":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if framework == "tinyresnet":
        import cupy
        return cupy.get_default_memory_pool().total_bytes() / 2**20
    import torch
    return torch.cuda.max_memory_reserved() / 2**20


def kernels(framework, device):
    """Which matrix kernels this child ran on: they decide most of a CPU step's time (cpu/machine.py)."""
    if device == "gpu":
        if framework == "tinyresnet":
            import cupy
            return f"CuPy {cupy.__version__} (cuBLAS)"
        import torch
        return f"PyTorch {torch.__version__}: cuDNN {torch.backends.cudnn.version()}"
    if framework == "tinyresnet":
        from tinyresnet.cpu import machine
        return "NumPy: " + machine.kernels()
    import torch
    return f"PyTorch {torch.__version__}: MKL and oneDNN, CPU capability {torch.backends.cpu.get_cpu_capability()}"


def measure(framework, depth, args):
    cmd = [sys.executable, __file__, "--child", framework, "--depths", str(depth), "--device", args.device,
           "--steps", str(args.steps), "--eval-batch", str(args.eval_batch)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def summary(values):
    """'median (min–max)' of a list of numbers."""
    med = statistics.median(values)
    return f"{med:.2f} ({min(values):.2f}–{max(values):.2f})" if med < 10 else \
           f"{med:.0f} ({min(values):.0f}–{max(values):.0f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3, help="tinyresnet/PyTorch child runs, alternating")
    parser.add_argument("--eval-batch", type=int, default=500)
    parser.add_argument("--child", choices=("tinyresnet", "pytorch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.depths[0], args.device, args.steps, args.eval_batch)
    sys.path.insert(0, str(ROOT))
    from tinyresnet.cpu import machine
    from tinyresnet.device import DeviceError, xp_for
    try:
        xp_for(args.device)
    except DeviceError as e:
        sys.exit(f"benchmarks/step.py: {e}")
    print(f"device={args.device}, float32; training step at batch {BATCH} (median of {args.steps} steps), "
          f"evaluation at batch {args.eval_batch}; {args.pairs} alternating pairs of child processes, "
          f"median (range) over the pairs; CPU: {machine.cpu()}")
    for depth in args.depths:
        ours, theirs = [], []
        for _ in range(args.pairs):
            result, err = measure("tinyresnet", depth, args)
            if result is None:
                sys.exit(f"benchmarks/step.py: tinyresnet failed: {err}")
            ours.append(result)
            result, terr = measure("pytorch", depth, args)
            if result is None:
                print(f"ResNet-{depth}: PyTorch unavailable ({terr}); tinyresnet train "
                      f"{summary([o['train'] for o in ours])} img/s")
                break
            theirs.append(result)
        if len(theirs) < len(ours):
            continue
        if depth == args.depths[0]:
            print(f"kernels: tinyresnet on {ours[0]['kernels']}; {theirs[0]['kernels']}")
            if "no AVX-512" in ours[0]["kernels"] and "AVX512" in theirs[0]["kernels"]:
                print("  warning: PyTorch ran AVX-512 kernels and NumPy did not, so the ratios below compare "
                      "vector widths as much as code.", machine.narrower_than_cpu_note() or "",
                      "\n  PyTorch can be held to AVX2 instead: "
                      "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2")
        print(f"ResNet-{depth}")
        for key, what, unit in (("train", "training step", "img/s"), ("peak_mb", "peak memory", "MB"),
                                ("eval", "evaluation", "img/s")):
            ratios = [o[key] / t[key] for o, t in zip(ours, theirs)]
            print(f"  {what:14s} tinyresnet {summary([o[key] for o in ours]):>18s} {unit:5s}  "
                  f"PyTorch {summary([t[key] for t in theirs]):>18s} {unit:5s}  "
                  f"ratio {summary(ratios)}", flush=True)


if __name__ == "__main__":
    main()
