"""What a run tells its user: its first lines, a line per epoch, its summary, and its exit status.

Exit status of `python -m tinyresnet.train`: 0 done; 2 bad option or data, or --out in use
by another run (one line on stderr); 1 the loss became NaN/inf (the last good checkpoint is
kept), or a file could not be written; 130 stopped by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP.
"""
import contextlib
import math
import sys
import time

from ..cpu import machine
from ..data import DataError
from ..device import DeviceError
from .checkpoint import CheckpointError
from .folder import CHECKPOINT, CONFIG, LOG, LOG_COLUMNS
from . import parallel
from .console import plural, say
from .recipe import VAL_SIZE, UsageError
from .stops import Diverged, Interrupted, WriteFailed


def introduction(state):
    r = state.recipe
    lines = [f"{state.model!r} on {r.device}; {len(state.train_loader.x)} training images, "
             f"batch {r.batch_size}{batch_norm_slices(r)}, {state.batches_per_epoch} batches per epoch",
             f"{length(state.total, state.total / state.batches_per_epoch)}; {state.opt.schedule}"]
    if state.team.describe(r.batch_size):
        lines.append(state.team.describe(r.batch_size))
    if r.val_split:
        lines.append(f"--val-split: {VAL_SIZE} training images held out; the test_* columns "
                     "are measured on them, not on the test set")
    if state.iteration:
        lines.append(f"resuming at iteration {state.iteration} (epoch {state.epoch})")
    note = machine.narrower_than_cpu_note() if r.device == "cpu" else None
    if note:
        lines.append(f"note: {note}")
    lines.append(f"writing to {state.out}/")
    return "\n".join(lines)


def batch_norm_slices(recipe):
    """' (batch norm over slices of 64)' for --bn-batch 64, else ''."""
    return "" if recipe.bn_batch is None else f" (batch norm over slices of {recipe.bn_batch})"


def epoch_line(state, row):
    return (f"epoch {row['epoch']:g}  iter {row['iteration']}  lr {row['lr']:g}  "
            f"train loss {row['train_loss']:.4f} err {row['train_error']:.2f}%  "
            + (f"{state.test_set} loss {row['test_loss']:.4f} err {row['test_error']:.2f}%  "
               if math.isfinite(row["test_error"]) else f"({state.test_set} set not measured, --eval-every)  ")
            + f"[{duration(row['wall_time'])}]")


def summarize(state):
    """The run's results as a dict: final and best errors (in percent), time, speed, paths."""
    rows, r = state.rows, state.recipe
    last = rows[-1] if rows else {k: math.nan for k in LOG_COLUMNS}
    measured = [row for row in rows if math.isfinite(row["test_error"])]  # --eval-every skips some
    best = min(measured, key=lambda row: row["test_error"]) if measured else last
    train_seconds = time.perf_counter() - state.started - state.eval_seconds
    images = (state.iteration - state.first_iteration) * r.batch_size
    return {
        "name": r.name, "label": r.label, "device": r.device, "test_set": state.test_set,
        "iterations": state.iteration, "epochs": state.iteration / state.batches_per_epoch,
        "train_loss": last["train_loss"], "train_error": last["train_error"],
        "test_loss": last["test_loss"], "test_error": last["test_error"],
        "best_test_error": best["test_error"], "best_iteration": best["iteration"],
        "wall_time": state.wall_time(),
        "images_per_second": images / train_seconds if images else math.nan,
        "out": str(state.out), "log": str(state.out / LOG),
        "checkpoint": str(state.out / CHECKPOINT), "config": str(state.out / CONFIG),
    }


def summary_text(s):
    return (f"{s['label']}: {length(s['iterations'], s['epochs'])}, "
            f"wall time {duration(s['wall_time'])}\n"
            f"  final: train error {s['train_error']:.2f}%, {s['test_set']} error {s['test_error']:.2f}%; "
            f"best {s['test_set']} error {s['best_test_error']:.2f}% at iteration {s['best_iteration']}\n"
            f"  {s['images_per_second']:.0f} images/s training on {s['device']} (this session); "
            f"log: {s['log']}")


def length(iterations, epochs):
    """'1 iteration (0.3333 epochs)', '390 iterations (1 epoch)'."""
    return f"{plural(iterations, 'iteration')} ({plural(f'{epochs:.4g}', 'epoch')})"


def duration(seconds):
    """3725.2 -> '1h02m05s', 65 -> '1m05s'."""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


@contextlib.contextmanager
def exit_status():
    """Around the command line: a known failure becomes one line on stderr and its exit status."""
    try:
        yield
    except (UsageError, DataError, DeviceError, CheckpointError) as e:
        _exit(f"error: {e}", 2)
    except Diverged as e:
        _exit(f"diverged: {e}", e.status)
    except Interrupted as e:
        _exit(f"{e.by}: {e}", e.status)
    except KeyboardInterrupt:
        _exit("interrupted", 130)
    except (WriteFailed, OSError) as e:  # e.g. --out cannot be written
        _exit(f"error: {e}", 1)


def _exit(message, status):
    sys.stdout.flush()
    if parallel.speaks():  # on N ranks, rank 0 says it once
        say(f"tinyresnet.train: {message}", sys.stderr)
    raise SystemExit(status)
