"""Search, with the PyTorch twin, for the cheapest schedule that shows the whole of Fig. 6.

    python benchmarks/fig6_search.py --data-dir data --out benchmarks/results/fig6_search.jsonl \
        --nets resnet20 resnet56 --subsets 10000 50000 --lengths 780 1170 1950 3120

Lesson 06 wants, at the end of training and in training error: plain-56 above plain-20
(degradation), ResNet-56 below ResNet-20 and below plain-56. tinyresnet is about half as fast as
PyTorch on a CPU, so the schedules are tried here first, on tinyresnet's own data pipeline
(`tinyresnet.data.Loader`: the same subset, per-pixel mean, pad-crop-flip and shuffling for a
given seed) with the twin nets of `torch_models.py`, initialized as tinyresnet initializes.

What stays the paper's: the 6n+2 nets with option-A shortcuts, batch norm, He init, SGD with
momentum 0.9 and weight decay 1e-4, the LR divided by 10 at 50 % and 75 % of the run. What is
searched: the number of training images (--subsets), the length (--lengths, in iterations), the
paper's warm-up (--warmup: LR/10 until the training error is below 80 %, as tinyresnet.train's)
and the batch size (--batch; the paper's 128 at LR 0.1, and the LR scaled linearly with it).

One job is one net, one subset and one seed, for all the lengths at once: the LR is the same
for every length until the first drop, so the job trains one trajectory up to half of the
longest length, keeps a snapshot at half of each length, and finishes every length from its
snapshot. Each finished length is one JSON line in --out, with the numbers tinyresnet's log
would end with: the training error averaged over the last epoch (as it was trained, augmented,
batch norm in training mode) and the error on all 10,000 test images in eval mode. Jobs whose
lines are already in --out are skipped, so the search can be stopped and started again.

Two jobs run at a time, one thread each (the longest first), each with its own progress bar.
`--table` prints what --out holds.
"""
import argparse
import copy
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tinyresnet.data import Loader, load_cifar10, per_pixel_mean, subset  # noqa: E402
from tinyresnet.optim import WARMUP_FRACTION, WARMUP_UNTIL  # noqa: E402  (--warmup as tinyresnet.train's)
from tinyresnet.train import DATA_SEED, READ_EVERY  # noqa: E402  (which images --subset keeps; warm-up window)

NETS = {"plain20": (20, False), "plain56": (56, False), "resnet20": (20, True), "resnet56": (56, True)}
LABELS = {"plain20": "plain-20", "plain56": "plain-56", "resnet20": "ResNet-20", "resnet56": "ResNet-56"}
PAPER_BATCH, PAPER_LR, MOMENTUM, WEIGHT_DECAY = 128, 0.1, 0.9, 1e-4
_slot = 0  # which line of the terminal this worker's progress bar takes


def _take_slot(counter):
    """Pool initializer: give each worker process its own progress-bar line."""
    global _slot
    with counter.get_lock():
        _slot, counter.value = counter.value, counter.value + 1


class Stream:
    """Minibatches epoch after epoch from a Loader, with snapshots that replay exactly."""

    def __init__(self, loader):
        self.loader, self.rng = loader, loader.rng
        self.epoch_state, self.position = self.rng.bit_generator.state, 0
        self.batches = iter(loader)

    def next(self):
        if self.position == len(self.loader):
            self.epoch_state, self.position = self.rng.bit_generator.state, 0
            self.batches = iter(self.loader)
        self.position += 1
        return next(self.batches)

    def snapshot(self):
        return copy.deepcopy(self.epoch_state), self.position

    def restore(self, snapshot):
        self.epoch_state, position = copy.deepcopy(snapshot[0]), snapshot[1]
        self.rng.bit_generator.state = self.epoch_state
        self.batches, self.position = iter(self.loader), 0
        for _ in range(position):
            self.next()


def job(spec):
    """Train one net on one subset with one seed for every length; a list of result dicts."""
    import torch
    from torch_models import CifarResNet, init_like_tinyresnet
    torch.set_num_threads(1)
    device = torch.device(spec.get("device", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {spec['device']}: PyTorch sees no CUDA device here; use --device cpu")
    net, n_train, seed, lengths, warmup, batch, data_dir = (
        spec[k] for k in ("net", "subset", "seed", "lengths", "warmup", "batch", "data_dir"))
    base_lr = PAPER_LR * batch / PAPER_BATCH  # linear scaling: batch 32 trains at 0.025
    depth, residual = NETS[net]
    x_train, y_train, x_test, y_test = load_cifar10(data_dir, download=False)
    if n_train < len(x_train):
        x_train, y_train = subset(x_train, y_train, n_train, seed=DATA_SEED)
    mean = per_pixel_mean(x_train)
    stream = Stream(Loader(x_train, y_train, batch, mean, shuffle=True, augment=True, rng=np.random.default_rng((seed, 1))))
    test = Loader(x_test, y_test, 500, mean)
    per_epoch = len(stream.loader)
    torch.manual_seed(seed)
    model = init_like_tinyresnet(CifarResNet(depth, residual)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    state = {"iteration": 0, "warm": warmup, "wrong": [], "loss": [], "seconds": 0.0}
    total = max(lengths) // 2 + sum(t - t // 2 for t in lengths)  # to every half, then each second half
    bar = tqdm(total=total, desc=f"{LABELS[net]} {n_train} images seed {seed}", unit="it",
               position=_slot, leave=False, mininterval=5, dynamic_ncols=True)

    def train_to(end, milestones):
        start = time.perf_counter()
        model.train()
        while state["iteration"] < end:
            it = state["iteration"]
            lr = WARMUP_FRACTION * base_lr if state["warm"] else base_lr * 0.1 ** sum(it >= m for m in milestones)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = stream.next()
            x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            state["wrong"].append(int((logits.argmax(1) != y).sum()))
            state["loss"].append(loss.item())
            state["iteration"] += 1
            bar.update()
            if state["warm"] and state["iteration"] % READ_EVERY == 0:
                state["warm"] = sum(state["wrong"][-READ_EVERY:]) / (READ_EVERY * batch) >= WARMUP_UNTIL
        state["seconds"] += time.perf_counter() - start

    def snapshot():
        return copy.deepcopy((model.state_dict(), opt.state_dict(), {**state, "wrong": list(state["wrong"]),
                              "loss": list(state["loss"])}, stream.snapshot()))

    def restore(snap):
        model_state, opt_state, st, stream_snap = copy.deepcopy(snap)
        model.load_state_dict(model_state)
        opt.load_state_dict(opt_state)
        state.clear()
        state.update(st)
        stream.restore(stream_snap)

    snaps = {}
    for length in sorted(lengths):
        train_to(length // 2, [])
        snaps[length] = snapshot()
    results = []
    for length in sorted(lengths):
        restore(snaps[length])
        train_to(length, [length // 2, length * 3 // 4])
        last_epoch = state["wrong"][(length - 1) // per_epoch * per_epoch:]
        start = time.perf_counter()
        test_error, test_loss = evaluate(model, test, device)
        results.append({**{k: spec[k] for k in ("net", "subset", "seed", "warmup", "batch")}, "iterations": length,
                        "epochs": length / per_epoch,
                        "train_error": 100 * sum(last_epoch) / (len(last_epoch) * batch),
                        "train_loss": float(np.mean(state["loss"][-len(last_epoch):])),
                        "test_error": test_error, "test_loss": test_loss,
                        "train_seconds": state["seconds"], "eval_seconds": time.perf_counter() - start,
                        "torch": torch.__version__, "device": device_name(device)})
        with open(spec["out"], "a") as f:  # each length as soon as it is done: a crash loses no result
            f.write(json.dumps(results[-1]) + "\n")
        r = results[-1]
        tqdm.write(f"{LABELS[net]:>9} {n_train:>6} images, batch {batch}, {length:>5} iterations, seed {seed}: train "
                   f"{r['train_error']:.2f}%  test {r['test_error']:.2f}%  ({r['train_seconds'] / 60:.0f} min)")
    bar.close()
    return results


def device_name(device):
    """What a result row records of where it ran: 'cpu', or the GPU's name."""
    import torch
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def evaluate(model, loader, device):
    """(error in %, mean loss) over every image of loader, in eval mode, no graph."""
    import torch
    model.eval()
    wrong, loss = 0, 0.0
    with torch.no_grad():
        for x, y in loader:
            x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            logits = model(x)
            wrong += int((logits.argmax(1) != y).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
    model.train()
    return 100 * wrong / len(loader.x), loss / len(loader.x)


def read_rows(out, **match):
    """The runs in `out` (one JSON line each) whose fields equal `match`; [] when there is no file."""
    out = Path(out)
    if not out.is_file():
        return []
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def done_keys(out):
    rows = read_rows(out)
    return {(r["net"], r["subset"], r["seed"], r["warmup"], r.get("batch", PAPER_BATCH), r["iterations"])
            for r in rows}


def table(out):
    """One line per (subset, batch, warm-up, length, seed): the four nets' final errors and the orderings."""
    rows = read_rows(out)
    groups = {}
    for r in rows:
        groups.setdefault((r["subset"], r.get("batch", PAPER_BATCH), r["warmup"], r["iterations"], r["seed"]), {})[r["net"]] = r
    lines = ["| images | batch | warm-up | iterations | epochs | seed | plain-20 | plain-56 | ResNet-20 | ResNet-56 "
             "| plain-56 > plain-20 | ResNet-56 < ResNet-20 | ResNet-56 < plain-56 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(g, net):
        r = g.get(net)
        return f"{r['train_error']:.1f} / {r['test_error']:.1f}" if r else "—"

    def order(g, a, b):  # is a's training error above b's?
        if a in g and b in g:
            return "yes" if g[a]["train_error"] > g[b]["train_error"] else "**no**"
        return "—"
    for (n, batch, warm, length, seed), g in sorted(groups.items()):
        epochs = next(iter(g.values()))["epochs"]
        lines.append(f"| {n} | {batch} | {'yes' if warm else 'no'} | {length} | {epochs:g} | {seed} | "
                     + " | ".join(cell(g, net) for net in NETS) + " | "
                     + " | ".join((order(g, "plain56", "plain20"), order(g, "resnet20", "resnet56"),
                                   order(g, "plain56", "resnet56"))) + " |")
    return "\n".join(lines) + "\n\ncells: training error / test error (%), at the end of the run"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fig6_search.jsonl")
    p.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    p.add_argument("--subsets", nargs="+", type=int, default=[10000, 50000])
    p.add_argument("--lengths", nargs="+", type=int, default=[780, 1170, 1950, 3120])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--warmup", action="store_true")
    p.add_argument("--batch", type=int, default=PAPER_BATCH, help="minibatch size; LR 0.1 x batch / 128")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu", help="where the twin trains: cpu (default) or cuda (one job at a time "
                   "is best there: --workers 1); the data pipeline stays on the host, as tinyresnet's does")
    p.add_argument("--table", action="store_true", help="print the table of what --out holds, and stop")
    args = p.parse_args()
    if args.table:
        print(table(args.out))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(args.out)
    specs = [{"net": net, "subset": n, "seed": seed, "warmup": args.warmup, "batch": args.batch,
              "data_dir": args.data_dir, "out": str(args.out), "device": args.device,
              "lengths": [t for t in args.lengths if (net, n, seed, args.warmup, args.batch, t) not in done]}
             for net in args.nets for n in args.subsets for seed in args.seeds]
    specs = [s for s in specs if s["lengths"]]
    specs.sort(key=lambda s: -NETS[s["net"]][0] * (max(s["lengths"]) + sum(s["lengths"])) / 2)
    print(f"{len(specs)} jobs, {args.workers} at a time; results go to {args.out}", flush=True)
    with ProcessPoolExecutor(args.workers, initializer=_take_slot, initargs=(multiprocessing.Value("i", 0),)) as pool:
        for future in [pool.submit(job, s) for s in specs]:
            future.result()  # re-raises a job's error


if __name__ == "__main__":
    main()
