"""One process with two threads against two MPI ranks with one thread each: a training step's img/s.

    python benchmarks/parallel.py [--depths 20 56] [--steps 5] [--pairs 3] [--batch 128]

Both settings train the same global minibatch of --batch images per step with train.train_step,
the step of `python -m tinyresnet.train`:
  1×2  one process, BLAS and the speed wing on 2 threads, batch norm over the whole batch;
  2×1  `mpiexec -n 2 -bind-to core`: two ranks, each pinned to one core (one BLAS thread, the
       speed wing on one thread), each with half the batch and its own batch norm, the
       gradients averaged by one allreduce per step (tinyresnet/run/parallel.py).
Each measurement is a fresh set of processes timing --steps steps after two warm-up steps; the
two settings alternate --pairs times, so that a busy moment of the machine hits both. Printed:
the median img/s over the pairs with its range, the ratio 2×1 / 1×2, and, for 2×1, the median
time per step that rank 0 spent in the allreduce (which includes waiting for the slower rank).
Random 32×32 images, float32, the speed wing installed (TINYRESNET_DEFINITIONS=1 times the
core's definitions instead). Needs mpi4py and mpiexec (pip install mpi4py mpich).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SETTINGS = ("1x2", "2x1")


def child(depth, steps, batch):
    """Time `steps` training steps of ResNet-depth on this process's share of a global batch, after two
    warm-up steps; rank 0 (or the single process) prints one JSON line."""
    from tinyresnet import cpu, models, optim
    from tinyresnet.device import to_device
    from tinyresnet.nn import set_ghost_batch
    from tinyresnet.run import parallel, stops
    from tinyresnet.train import train_step
    cpu.install()
    team = parallel.team()
    team.start(None, stops.StopRequest())
    model = set_ghost_batch(models.cifar_resnet(depth), None)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x, y = team.shard(rng.standard_normal((batch, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, batch))
    x, y = to_device(x, "cpu"), to_device(y, "cpu")
    exchange, in_exchange = team.exchange, []

    def timed_exchange(*args):
        start = time.perf_counter()
        result = exchange(*args)
        in_exchange.append(time.perf_counter() - start)
        return result
    team.exchange = timed_exchange
    for _ in range(2):
        train_step(model, opt, x, y, team)
    times = []
    del in_exchange[:]
    for _ in range(steps):
        start = time.perf_counter()
        train_step(model, opt, x, y, team)
        times.append(time.perf_counter() - start)
    if team.first:
        from tinyresnet.cpu import machine
        print(json.dumps({"img_s": batch / float(np.median(times)), "processes": team.size,
                          "allreduce_ms": 1000 * float(np.median(in_exchange)) if team.size > 1 else None,
                          "cores": machine.CORES, "kernels": machine.kernels()}))


def measure(setting, depth, args):
    """One measurement of setting ('1x2' or '2x1'): (result dict, None) or (None, why it failed)."""
    me = [sys.executable, __file__, "--child", "--depths", str(depth), "--steps", str(args.steps),
          "--batch", str(args.batch)]
    threads = "2" if setting == "1x2" else "1"
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE")}
    env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    cmd = me if setting == "1x2" else [args.mpiexec, "-n", "2", "-bind-to", "core", *me]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return None, (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    return json.loads(lines[-1]), None


def summary(values):
    """'median (min–max)' of a list of numbers."""
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement (default 5)")
    parser.add_argument("--pairs", type=int, default=3, help="alternations of the two settings (default 3)")
    parser.add_argument("--batch", type=int, default=128, help="global minibatch (default 128)")
    parser.add_argument("--mpiexec", default=shutil.which("mpiexec") or shutil.which(
        "mpiexec", path=str(Path(sys.executable).parent)), help="the launcher (default: mpiexec on PATH, or beside python)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.depths[0], args.steps, args.batch)
    if args.mpiexec is None:
        sys.exit("benchmarks/parallel.py: no mpiexec on PATH: pip install mpi4py mpich")
    from tinyresnet.cpu import machine
    print(f"{machine.cpu()}; {machine.CORES} cores; NumPy: {machine.kernels()}")
    print(f"global batch {args.batch}, {args.steps} timed steps per measurement, {args.pairs} pairs")
    print("| net | 1 process × 2 threads, img/s | 2 ranks × 1 thread, img/s | 2×1 / 1×2 | allreduce per step |")
    print("| --- | --- | --- | --- | --- |")
    for depth in args.depths:
        results = {s: [] for s in SETTINGS}
        for _ in range(args.pairs):
            for setting in SETTINGS:
                result, error = measure(setting, depth, args)
                if error:
                    sys.exit(f"benchmarks/parallel.py: ResNet-{depth}, {setting}: {error}")
                results[setting].append(result)
        one, two = ([r["img_s"] for r in results[s]] for s in SETTINGS)
        ratios = [b / a for a, b in zip(one, two)]
        allreduce = statistics.median(r["allreduce_ms"] for r in results["2x1"])
        print(f"| ResNet-{depth} | {summary(one)} | {summary(two)} | {statistics.median(ratios):.2f}× "
              f"({min(ratios):.2f}–{max(ratios):.2f}) | {allreduce:.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
