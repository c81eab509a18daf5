"""Train a CIFAR-10 ResNet, or its plain twin, with the recipe of He et al. 2016 (section 4.2).

    python -m tinyresnet.train --depth 56 --residual --device gpu
    python -m tinyresnet.train --depth 20 --plain --epochs 10 --subset 5000
    python -m tinyresnet.train --out runs/resnet56 --resume      # continue a stopped run

The defaults are the paper's recipe: SGD with momentum 0.9 and weight decay
1e-4, minibatches of 128, learning rate 0.1 divided by 10 at 50% and 75% of
the run (32k and 48k of 64k iterations). The images are mean-subtracted,
padded by 4 pixels, randomly cropped back to 32x32 and flipped (see data.py).

Everything goes into the --out folder (default runs/<name>, e.g. runs/resnet56):

  config.json     every option, the exact command, the device and the versions
  log.csv         a row at the end of every epoch (and at the end of the run):
                  iteration,epoch,lr,train_loss,train_error,test_loss,test_error,wall_time
                  Errors are in percent. train_* average the epoch's minibatches as
                  they were trained (augmented, batch-norm in training mode);
                  test_* are measured on the whole test set (the 5k validation
                  images with --val-split) in eval mode. lr is the last step's.
                  wall_time is seconds since the run began, summed over resumes.
  checkpoint.npz  everything needed to go on exactly where the run stopped

The options are parsed in options.py, the log and config are written by
runfolder.py, the checkpoint by checkpoint.py; this module is the loop.

Exit status: 0 done; 2 bad option or data (one line on stderr); 1 the loss
became NaN/inf (the last good checkpoint is kept); 130 stopped by Ctrl-C.

The loop never waits for the device inside a step: losses and mistakes are
summed where they are computed, and read to the host (which waits for the
GPU) every READ_EVERY iterations and at the end of each epoch.
"""
import argparse
import contextlib
import json
import math
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import functional as F
from . import models, optim
from .autograd import Tensor, no_grad
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import DataError, Loader, load_cifar10, per_pixel_mean, split_train_val, subset
from .device import DeviceError, to_device, xp_for
from .nn import manual_seed
from .options import (VAL_SIZE, WARMUP_LR, WARMUP_UNTIL, UsageError, argv_for, command_line,
                      merge_resumed_args, parse_args, run_label, run_name, saved_args)
from .runfolder import (CHECKPOINT, CONFIG, LOG, LOG_COLUMNS, append_row, duration, make_config,
                        now, write_json, write_log)

READ_EVERY = 20      # iterations between reads of the running loss to the host (and NaN checks)
EVAL_BATCH = 500
DATA_SEED = 0        # which images --val-split and --subset keep: the same for every --seed

class Diverged(RuntimeError):
    """The loss became NaN or infinite (exit status 1)."""


class Interrupted(Exception):
    """Stopped by Ctrl-C (exit status 130); the message says how to go on."""


# ------------------------------------------------------------------ building

class State:
    """Everything a run holds; the checkpoint saves the parts that change.

    model, opt, schedule       the net, SGD, and iteration -> learning rate
    train_loader, test_loader  host minibatches; train_loader draws from rng
    rng                        the one Generator for shuffling and augmentation
    iteration, total           SGD steps taken, and to take
    epoch_rng                  rng's state when the current epoch began (to replay it)
    epoch_sums, window_sums    running training loss and mistakes: this epoch, since the last read
    rows                       the log rows so far
    """

    def __init__(self, args, model, opt, schedule, train_loader, test_loader, rng, total):
        self.args, self.out, self.device = args, Path(args.out), args.device
        self.model, self.opt, self.schedule = model, opt, schedule
        self.train_loader, self.test_loader, self.rng, self.total = train_loader, test_loader, rng, total
        self.batches_per_epoch = len(train_loader)
        self.iteration = 0
        self.epoch_rng = rng.bit_generator.state
        self.epoch_sums, self.window_sums = Sums(), Sums()
        self.rows = []
        self.saved_iteration = None      # iteration of the checkpoint on disk, if any
        self.wall_time_before = 0.0      # wall time of earlier sessions (resume)
        self.started = time.perf_counter()
        self.window_started = self.started
        self.eval_seconds = 0.0          # this session's time spent evaluating
        self.checked = 0                 # last iteration where the loss was seen finite

    def wall_time(self):
        return self.wall_time_before + time.perf_counter() - self.started

    @property
    def epoch(self):
        """The epoch being trained, counting from 1."""
        return self.iteration // self.batches_per_epoch + 1


class Sums:
    """Running sums of minibatch losses and mistakes.

    The sums live where the model runs: adding a GPU loss gives a GPU scalar
    and nothing waits for the GPU. Only read() brings the values to the host.
    """

    def __init__(self, loss=0.0, wrong=0, images=0, steps=0):
        self.loss, self.wrong, self.images, self.steps = loss, wrong, images, steps

    def add(self, loss, wrong, images):
        self.loss = self.loss + loss
        self.wrong = self.wrong + wrong
        self.images += images
        self.steps += 1

    def read(self):
        """(mean minibatch loss, error as a fraction); waits for the device."""
        if not self.steps:
            return math.nan, math.nan
        return float(self.loss) / self.steps, int(self.wrong) / self.images

    def state_dict(self):
        return {"loss": float(self.loss), "wrong": int(self.wrong),
                "images": self.images, "steps": self.steps}


def load_data(args):
    """x_train, y_train, x_test, y_test (uint8 images, int labels, on the host) and the test set's name."""
    x_train, y_train, x_test, y_test = load_cifar10(args.data_dir)
    test_set = "test"
    if args.val_split:
        x_train, y_train, x_test, y_test = split_train_val(x_train, y_train, VAL_SIZE, seed=DATA_SEED)
        test_set = "val"
    if args.subset is not None:
        x_train, y_train = subset(x_train, y_train, args.subset, seed=DATA_SEED)
    if args.test_subset is not None:
        x_test, y_test = subset(x_test, y_test, args.test_subset, seed=DATA_SEED)
        test_set += f" ({args.test_subset} images)"
    return x_train, y_train, x_test, y_test, test_set


def build(args):
    """The model on its device, SGD, the LR schedule and the data loaders, as a fresh State."""
    xp_for(args.device)  # DeviceError now, before any data is loaded
    manual_seed(args.seed)
    model = models.cifar_resnet(args.depth, args.residual, args.shortcut).to(args.device)
    opt = optim.SGD(model.parameters(), args.lr, args.momentum, args.weight_decay)
    x_train, y_train, x_test, y_test, args.test_set = load_data(args)
    mean = per_pixel_mean(x_train)  # of the images actually trained on
    rng = np.random.default_rng((args.seed, 1))  # a stream of its own, apart from the weights' one
    train_loader = Loader(x_train, y_train, args.batch_size, mean, train=True, rng=rng)
    test_loader = Loader(x_test, y_test, EVAL_BATCH, mean, train=False)
    total = args.iterations if args.iterations is not None else args.epochs * len(train_loader)
    schedule = optim.StepDecay(args.lr, [total // 2, total * 3 // 4])
    if args.warmup:
        schedule = optim.Warmup(schedule, WARMUP_LR, WARMUP_UNTIL)
    return State(args, model, opt, schedule, train_loader, test_loader, rng, total)


# ------------------------------------------------------------------ training

def train_step(model, opt, x, y):
    """One SGD step on a minibatch already on the device; (loss, mistakes) as device scalars."""
    logits = model(Tensor(x))
    loss = F.cross_entropy(logits, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.data, (logits.data.argmax(axis=1) != y).sum()


def train_one_epoch(state, stop, quiet=False):
    """Train from state.iteration to the end of its epoch, or of the run if that comes first.

    The epoch's batches come from replaying the loader from state.epoch_rng,
    so an epoch resumed in the middle sees exactly the batches it would have.
    Returns False when Ctrl-C asked to stop (after a whole step), else True.
    """
    per_epoch = state.batches_per_epoch
    done = state.iteration % per_epoch  # batches of this epoch trained before a stop
    end = min(per_epoch, done + state.total - state.iteration)
    state.rng.bit_generator.state = state.epoch_rng
    batches = iter(state.train_loader)  # draws this epoch's shuffle from rng
    for _ in range(done):
        next(batches)                   # replay the augmentation draws already used
    epochs = math.ceil(state.total / per_epoch)
    with tqdm(total=end, initial=done, desc=f"epoch {state.epoch}/{epochs}", unit="batch",
              leave=False, disable=quiet, dynamic_ncols=True) as bar:
        for _ in range(done, end):
            if stop.requested:
                return False
            x, y = next(batches)
            state.opt.lr = state.schedule(state.iteration)
            loss, wrong = train_step(state.model, state.opt,
                                     to_device(x, state.device), to_device(y, state.device))
            state.epoch_sums.add(loss, wrong, len(y))
            state.window_sums.add(loss, wrong, len(y))
            state.iteration += 1
            bar.update()
            if state.iteration % READ_EVERY == 0:
                read_window(state, bar)
    return True


def read_window(state, bar):
    """Every READ_EVERY iterations: check the loss, feed the warm-up, update the bar."""
    loss, error = state.window_sums.read()  # the loop's only wait for the device
    check_finite(state, loss, "training loss")
    if isinstance(state.schedule, optim.Warmup) and not state.schedule.done:
        # the paper warms up "until the training error is below 80%": here, the
        # error over the last READ_EVERY minibatches (2560 images at batch 128)
        state.schedule.observe(error)
        if state.schedule.done and not bar.disable:
            tqdm.write(f"warm-up over at iteration {state.iteration}: "
                       f"training error {error:.1%}, lr {state.schedule(state.iteration):g}")
    now = time.perf_counter()
    speed = state.window_sums.images / max(now - state.window_started, 1e-9)
    bar.set_postfix_str(f"loss {loss:.3f}  err {error:.1%}  lr {state.opt.lr:g}  {speed:.0f} img/s")
    state.window_sums, state.window_started = Sums(), now


def check_finite(state, value, what):
    """Stop the run (Diverged) when a loss is NaN or inf; the checkpoint on disk stays as it is."""
    if math.isfinite(value):
        state.checked = state.iteration
        return
    kept = (f"{state.out / CHECKPOINT} still holds iteration {state.saved_iteration}"
            if state.saved_iteration is not None else "no checkpoint was saved")
    raise Diverged(f"the {what} is {value} at iteration {state.iteration} (it was finite at iteration "
                   f"{state.checked}); stopped, {kept}; try a smaller --lr or --warmup")


def evaluate(model, loader, device, quiet=True):
    """(mean loss, error as a fraction) over every image of loader, in eval mode, no graph."""
    model.eval()
    loss_sum, wrong = 0.0, 0
    with no_grad():
        for x, y in tqdm(loader, desc="evaluating", unit="batch", leave=False, disable=quiet):
            x, y = to_device(x, device), to_device(y, device)
            logits = model(Tensor(x))
            loss_sum = loss_sum + F.cross_entropy(logits, y).data * len(y)
            wrong = wrong + (logits.data.argmax(axis=1) != y).sum()
    model.train()
    n = len(loader.x)
    return float(loss_sum) / n, int(wrong) / n


def end_of_epoch(state, quiet=False):
    """Measure the test set, log a row, save a checkpoint."""
    train_loss, train_error = state.epoch_sums.read()
    check_finite(state, train_loss, "training loss")
    t0 = time.perf_counter()
    test_loss, test_error = evaluate(state.model, state.test_loader, state.device, quiet)
    seconds = time.perf_counter() - t0
    state.eval_seconds += seconds
    state.window_started += seconds  # evaluation is not training time
    check_finite(state, test_loss, f"{state.args.test_set} loss")
    row = {"iteration": state.iteration, "epoch": state.iteration / state.batches_per_epoch,
           "lr": state.opt.lr, "train_loss": train_loss, "train_error": 100 * train_error,
           "test_loss": test_loss, "test_error": 100 * test_error, "wall_time": state.wall_time()}
    append_row(state.out / LOG, row)
    state.rows.append(row)
    if state.iteration % state.batches_per_epoch == 0:  # a whole epoch: the next one starts here
        state.epoch_sums = Sums()
        state.epoch_rng = state.rng.bit_generator.state
    save(state)
    if not quiet:
        tqdm.write(f"epoch {row['epoch']:g}  iter {state.iteration}  lr {row['lr']:g}  "
                   f"train loss {train_loss:.4f} err {row['train_error']:.2f}%  "
                   f"{state.args.test_set} loss {test_loss:.4f} err {row['test_error']:.2f}%  "
                   f"[{duration(row['wall_time'])}]")


# ------------------------------------------------------------------ saving and restoring

def save(state):
    """Checkpoint everything that changes during training (never NaN weights)."""
    finite = all(bool(xp_for(state.device).isfinite(p.data).all()) for p in state.model.parameters())
    if not finite:
        check_finite(state, math.nan, "model's weights")
    save_checkpoint(state.out / CHECKPOINT, {
        "args": saved_args(state.args),
        "total": state.total,
        "iteration": state.iteration,
        "epoch": state.iteration / state.batches_per_epoch,  # for the reader; iteration is what counts
        "model": state.model.state_dict(),          # weights and batch-norm running statistics
        "optimizer": state.opt.state_dict(),        # momentum buffers, lr
        "schedule": state.schedule.state_dict(),    # warm-up done or not
        "epoch_rng": state.epoch_rng,               # rng state at the start of the current epoch
        "epoch_sums": state.epoch_sums.state_dict(),
        "window_sums": state.window_sums.state_dict(),
        "rows": state.rows,
        "wall_time": state.wall_time(),
    })
    state.saved_iteration = state.iteration


def restore(state, ckpt):
    """Put a checkpoint's values into a freshly built state."""
    try:
        state.model.load_state_dict(ckpt["model"])
        state.opt.load_state_dict(ckpt["optimizer"])
        state.schedule.load_state_dict(ckpt["schedule"])
        state.rng.bit_generator.state = ckpt["epoch_rng"]
        state.iteration = state.saved_iteration = state.checked = int(ckpt["iteration"])
        state.epoch_rng = ckpt["epoch_rng"]
        state.epoch_sums = Sums(**ckpt["epoch_sums"])
        state.window_sums = Sums(**ckpt["window_sums"])
        state.rows = ckpt["rows"]
        state.wall_time_before = float(ckpt["wall_time"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{state.out / CHECKPOINT} does not fit this run "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


# ------------------------------------------------------------------ the run

class _CtrlC:
    """SIGINT handler: the first Ctrl-C asks the loop to stop after the current step
    (so the state saved is a consistent one); a second one stops at once."""
    requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@contextlib.contextmanager
def ctrl_c_stops_cleanly():
    stop = _CtrlC()
    try:
        previous = signal.signal(signal.SIGINT, stop)
    except ValueError:  # not the main thread: Ctrl-C cannot reach this code anyway
        previous = False
    try:
        yield stop
    finally:
        if previous is not False:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def train(args):
    """Run the training that args describe (parse_args's Namespace, or a list of
    command-line words); returns the summary dict.

    Raises UsageError, DataError, DeviceError, CheckpointError (bad input),
    Diverged (NaN/inf loss) or Interrupted (Ctrl-C, after saving a checkpoint).
    """
    if not isinstance(args, argparse.Namespace):
        args = parse_args(args)
    out = Path(args.out)
    ckpt = None
    if args.resume:
        ckpt = load_checkpoint(out / CHECKPOINT)
        merge_resumed_args(args, ckpt, out / CHECKPOINT)
    elif (out / CHECKPOINT).exists():
        raise UsageError(f"{out} already holds a run ({CHECKPOINT}); continue it with --resume, "
                         "or give another --out")
    state = build(args)
    quiet = args.quiet
    if ckpt is None:
        out.mkdir(parents=True, exist_ok=True)
        config = make_config(args, state)
        write_log(out / LOG, [])
    else:
        restore(state, ckpt)
        if state.iteration > state.total:
            raise UsageError(f"the checkpoint is at iteration {state.iteration}, past the "
                             f"{state.total} iterations asked for")
        if state.total != ckpt["total"] and not quiet:
            print(f"note: the run now has {state.total} iterations instead of {ckpt['total']}; "
                  f"the LR drops move to {state.total // 2} and {state.total * 3 // 4}")
        write_log(out / LOG, state.rows)  # drop rows logged after the checkpoint
        config = (json.loads((out / CONFIG).read_text()) if (out / CONFIG).is_file()
                  else make_config(args, state))
        config.setdefault("resumed", []).append({
            "command": command_line(args), "iteration": state.iteration, "device": args.device,
            "time": now()})
    write_json(out / CONFIG, config)
    if not quiet:
        print(_introduction(state))
    start_iteration = state.iteration
    with ctrl_c_stops_cleanly() as stop:
        try:
            while state.iteration < state.total:
                if not train_one_epoch(state, stop, quiet):
                    stop_safely(state)
                end_of_epoch(state, quiet)
                if stop.requested and state.iteration < state.total:
                    raise Interrupted(f"stopped at iteration {state.iteration} (end of an epoch); "
                                      f"{_resume_hint(state)}")
        except KeyboardInterrupt:
            raise Interrupted("stopped in the middle of a step, nothing saved; "
                              + _resume_hint(state)) from None
    summary = summarize(state, start_iteration)
    if not args.quiet:
        print(_summary_text(summary))
    return summary


def stop_safely(state):
    """Ctrl-C between two steps: save the state reached, then stop."""
    loss, _ = state.epoch_sums.read()
    if state.epoch_sums.steps:
        check_finite(state, loss, "training loss")
    save(state)
    raise Interrupted(f"stopped at iteration {state.iteration}; {_resume_hint(state)}")


def _resume_hint(state):
    if state.saved_iteration is None:
        return "no checkpoint was saved yet, so there is nothing to resume"
    return (f"{state.out / CHECKPOINT} holds iteration {state.saved_iteration}; go on with: "
            f"python -m tinyresnet.train --out {shlex.quote(str(state.out))} --resume")


def _introduction(state):
    a = state.args
    lines = [f"{state.model!r} on {a.device}; {len(state.train_loader.x)} training images, "
             f"batch {a.batch_size}, {state.batches_per_epoch} batches per epoch",
             f"{state.total} iterations ({state.total / state.batches_per_epoch:.4g} epochs); "
             f"lr {a.lr:g}, /10 at {state.total // 2} and {state.total * 3 // 4}"
             + (f"; warm-up at {WARMUP_LR:g} until training error < {WARMUP_UNTIL:.0%}" if a.warmup else "")]
    if a.test_set == "val":
        lines.append(f"--val-split: {VAL_SIZE} training images held out; the test_* columns "
                     "are measured on them, not on the test set")
    if state.iteration:
        lines.append(f"resuming at iteration {state.iteration} (epoch {state.epoch})")
    lines.append(f"writing to {state.out}/")
    return "\n".join(lines)


def summarize(state, start_iteration):
    """The run's results as a dict: final and best errors (in percent), time, speed, paths."""
    rows, a = state.rows, state.args
    last = rows[-1] if rows else {k: math.nan for k in LOG_COLUMNS}
    best = min(rows, key=lambda r: r["test_error"]) if rows else last
    train_seconds = time.perf_counter() - state.started - state.eval_seconds
    images = (state.iteration - start_iteration) * a.batch_size
    return {
        "name": run_name(a), "label": run_label(a), "device": a.device, "test_set": a.test_set,
        "iterations": state.iteration, "epochs": state.iteration / state.batches_per_epoch,
        "train_loss": last["train_loss"], "train_error": last["train_error"],
        "test_loss": last["test_loss"], "test_error": last["test_error"],
        "best_test_error": best["test_error"], "best_iteration": best["iteration"],
        "wall_time": state.wall_time(),
        "images_per_second": images / train_seconds if images else math.nan,
        "out": str(state.out), "log": str(state.out / LOG),
        "checkpoint": str(state.out / CHECKPOINT), "config": str(state.out / CONFIG),
    }


def _summary_text(s):
    return (f"{s['label']}: {s['iterations']} iterations ({s['epochs']:.4g} epochs), "
            f"wall time {duration(s['wall_time'])}\n"
            f"  final: train error {s['train_error']:.2f}%, {s['test_set']} error {s['test_error']:.2f}%; "
            f"best {s['test_set']} error {s['best_test_error']:.2f}% at iteration {s['best_iteration']}\n"
            f"  {s['images_per_second']:.0f} images/s training on {s['device']} (this session); "
            f"log: {s['log']}")


def main(argv=None):
    """The command line: returns the summary, or exits with status 2, 1 or 130 and one line."""
    try:
        return train(parse_args(argv))
    except (UsageError, DataError, DeviceError, CheckpointError) as e:
        _exit(f"error: {e}", 2)
    except Diverged as e:
        _exit(f"diverged: {e}", 1)
    except Interrupted as e:
        _exit(f"interrupted: {e}", 130)
    except KeyboardInterrupt:
        _exit("interrupted", 130)
    except OSError as e:  # e.g. --out cannot be written
        _exit(f"error: {e}", 1)


def _exit(message, status):
    sys.stdout.flush()
    print(f"tinyresnet.train: {message}", file=sys.stderr)
    raise SystemExit(status)


def run(depth=20, residual=True, shortcut="A", *, epochs=None, iterations=None, subset=None,
        test_subset=None, val_split=False, warmup=False, batch_size=128, lr=0.1, momentum=0.9,
        weight_decay=1e-4,
        device="cpu", data_dir=None, out=None, resume=False, seed=0, quiet=False):
    """Train from Python (a notebook, say), exactly as the command line with these options would.

    Returns the summary dict: final and best errors (percent), "out" (the run
    folder), "log" (its log.csv; plot it with tinyresnet.plot.plot_runs([out])).
    Errors are raised (UsageError, DataError, DeviceError, CheckpointError,
    Diverged, Interrupted), not turned into exit codes. With resume=True, the
    options left at their defaults here are taken from the checkpoint.
    """
    argv = argv_for(depth=depth, residual=residual, shortcut=shortcut, epochs=epochs,
                    iterations=iterations, subset=subset, test_subset=test_subset,
                    val_split=val_split, warmup=warmup, batch_size=batch_size, lr=lr,
                    momentum=momentum, weight_decay=weight_decay, device=device,
                    data_dir=data_dir, out=out, resume=resume, seed=seed, quiet=quiet)
    return train(parse_args(argv))


if __name__ == "__main__":
    main()
