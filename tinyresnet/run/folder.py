"""A run's folder (--out): what a training run writes there, and how to read it back.

  config.json     the recipe ("args"), the exact command, the device, the versions, the schedule
  log.csv         a row at the end of every epoch (and at the end of the run), appended as the run
                  goes, so a crash loses nothing that was logged:
                  iteration,epoch,lr,train_loss,train_error,test_loss,test_error,wall_time
                  Errors are in percent. train_* average the epoch's minibatches as they were
                  trained (augmented, batch norm in training mode); test_* are measured on the
                  whole test set (the 5k validation images with --val-split) in eval mode. lr is
                  the last step's. wall_time is seconds since the run began, summed over resumes.
  checkpoint.npz  everything needed to go on exactly where the run stopped (resume.py, checkpoint.py)

  .lock           while a run holds the folder: its process id (see claimed)

This module writes them and reads them back (plot.py draws what read_log gives). Whole files
are written atomically (atomic.py), like the checkpoint.
"""
import contextlib
import csv
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..cpu import machine
from ..device import xp_for
from .atomic import atomic_write, naming, sweep
from .console import warn
from ..models import network_name
from .recipe import UsageError, command_line

try:
    import fcntl
except ImportError:  # Windows: no advisory locks there; runs are not protected from each other
    fcntl = None

CHECKPOINT, LOG, CONFIG, LOCK = "checkpoint.npz", "log.csv", "config.json", ".lock"
LOG_COLUMNS = ("iteration", "epoch", "lr", "train_loss", "train_error",
               "test_loss", "test_error", "wall_time")
LOG_FORMATS = {"iteration": "{:d}", "epoch": "{:g}", "lr": "{:g}", "train_loss": "{:.6f}",
               "train_error": "{:.4f}", "test_loss": "{:.6f}", "test_error": "{:.4f}",
               "wall_time": "{:.1f}"}


class RunFolderError(Exception):
    """A folder, or a file in it, that is not what tinyresnet.train writes; explained in one line."""


class InUse(UsageError):
    """--out is held by another run that is still going (exit status 2)."""


# ------------------------------------------------------------------ one run at a time

@contextlib.contextmanager
def claimed(out):
    """Hold the folder out for one run: an exclusive lock on out/.lock for as long as the run lasts.

    A second run into the same folder is refused (InUse, naming the holder's process id).
    The lock is the operating system's (flock), so it goes with the process that held it:
    a run killed with -9 leaves its .lock file, but not the lock, and the next run takes it
    over and says so. Also sweeps the temporary files a killed run left. A start that fails
    leaves the folder as it found it: a folder that was empty loses the log.csv and
    config.json written before the failure (when no checkpoint was saved), and a folder made
    here is removed again.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; give a folder for the run")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise naming(e, out) from None
    fd = _lock(out / LOCK, made)
    try:
        sweep(out, (CHECKPOINT, LOG, CONFIG))
        was_empty = not contents(out)
        try:
            yield out
        except BaseException:
            if was_empty and not (out / CHECKPOINT).exists():
                for name in (LOG, CONFIG):
                    with contextlib.suppress(OSError):
                        os.unlink(out / name)
            raise
    finally:
        _unlock(out / LOCK, fd, made)


def contents(out):
    """The names in the folder out, but for the lock: what a run would find there."""
    return sorted(p.name for p in Path(out).iterdir() if p.name != LOCK)


def check_new(out):
    """UsageError unless out is empty: a new run writes only into a new or empty folder, so that
    it never overwrites a run's log.csv and config.json (committed results included). The
    message says what is there and how to go on."""
    there = contents(out)
    if not there:
        return
    if CHECKPOINT in there:
        raise UsageError(f"{out} already holds a run ({CHECKPOINT}); continue it with --resume, "
                         "or give another --out")
    files = [name for name in (LOG, CONFIG) if name in there]
    if files:
        raise UsageError(f"{out} holds the {' and '.join(files)} of a run but no {CHECKPOINT}, so it cannot be "
                         "resumed, and a new run would overwrite them; give another --out (or move them away)")
    shown = ", ".join(there[:3]) + (f" and {len(there) - 3} more" if len(there) > 3 else "")
    raise UsageError(f"{out} is not empty (it holds {shown}); a new run starts in a new or empty folder: "
                     "give another --out")


def _lock(path, made):
    """An open descriptor of path holding its exclusive lock, with our process id written in it.
    A lock file whose process is gone (killed -9) is taken over, with a warning naming it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            _unlock(path, None, made)
            raise naming(e, path) from None
        if fcntl is None:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd) or "unknown"
            os.close(fd)
            raise InUse(f"{path.parent} is in use by another run (process {holder}); wait until it "
                        "ends, or give another --out") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)  # the run that held it just removed that file: lock the one that is there now
    gone = _holder(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as e:  # a full disk, say
        _unlock(path, fd, made)
        raise naming(e, path) from None
    if gone:
        warn(f"{path.parent}: took over the lock of process {gone}, which ended without releasing it")
    return fd


def _holder(fd):
    """The process id written in an open lock file ('' if none)."""
    os.lseek(fd, 0, os.SEEK_SET)
    holder = os.read(fd, 32).decode(errors="replace").strip()
    os.lseek(fd, 0, os.SEEK_SET)
    return holder


def _unlock(path, fd, made):
    """Remove the lock file and let go of the lock; remove the folder again if the run made it
    and left it empty."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    if fd is not None:
        os.close(fd)
    if made:
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only if empty


# ------------------------------------------------------------------ names

def label_of(run_dir):
    """The paper's name of the run in run_dir: "ResNet-56", "plain-20"; the folder name if unknown."""
    config = read_config(run_dir)
    if "label" in config:
        return config["label"]
    args = config.get("args", {})
    if "depth" in args:
        return network_name(args["depth"], args.get("residual", True), args.get("shortcut", "A"))
    return _folder(run_dir).name


def _folder(run_dir):
    """The run folder, given it or its log.csv."""
    path = Path(run_dir)
    return path.parent if path.suffix == ".csv" else path


# ------------------------------------------------------------------ log.csv

def write_log(path, rows):
    """log.csv with a header and `rows`, replacing any old one atomically."""
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LOG_COLUMNS)
        writer.writerows(_formatted(row) for row in rows)


def append_row(path, row):
    try:
        with open(path, "a", newline="") as f:  # closing flushes: the row is on disk at once
            csv.writer(f).writerow(_formatted(row))
    except OSError as e:
        raise naming(e, path) from None


def _formatted(row):
    return [LOG_FORMATS[k].format(row[k]) for k in LOG_COLUMNS]


def read_log(run_dir):
    """The columns of run_dir/log.csv as NumPy arrays: {"iteration": ..., "test_error": ...}.

    Errors are in percent, as the run writes them. run_dir may also be the log.csv itself.
    """
    path = Path(run_dir)
    if path.is_dir() or not path.suffix:
        path = path / LOG
    if not path.is_file():
        raise RunFolderError(f"{path}: no such file; is {path.parent} a run folder written by "
                             "tinyresnet.train?")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or any(c not in rows[0] for c in ("iteration", "train_error", "test_error")):
        raise RunFolderError(f"{path}: not a training log (its header should be {','.join(LOG_COLUMNS)})")
    header, body = rows[0], [r for r in rows[1:] if r]
    try:
        return {name: np.array([float(r[i]) for r in body]) for i, name in enumerate(header)}
    except (ValueError, IndexError) as e:
        raise RunFolderError(f"{path}: a row cannot be read ({e})") from None


# ------------------------------------------------------------------ config.json

def make_config(state, argv):
    """config.json of a new run: state is a run.state.State, argv the command-line words that give it."""
    r = state.recipe
    return {
        "name": r.name, "label": r.label,
        "command": state.team.launcher() + command_line(argv), "argv": list(argv),
        "args": r.as_dict(),
        "device": r.device, "device_name": device_name(r.device),
        "test_set": state.test_set,
        "train_images": len(state.train_loader.x), "test_images": state.test_images,
        "batches_per_epoch": state.batches_per_epoch, "total_iterations": state.total,
        "schedule": str(state.opt.schedule),
        "parameters": state.model.num_parameters(),
        "versions": _versions(r.device),
        "started": now(),
        **({"processes": state.team.size} if state.team.size > 1 else {}),  # data-parallel ranks
    }


def read_config(run_dir):
    """run_dir/config.json as a dict ({} if there is none or it cannot be read)."""
    try:
        return load_config(run_dir) or {}
    except RunFolderError:
        return {}


def load_config(run_dir):
    """run_dir/config.json as a dict, None if there is none; RunFolderError if it is damaged
    (not JSON, not an object, or without the recipe and sessions a run writes)."""
    path = _folder(run_dir) / CONFIG
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunFolderError(f"{path} is damaged ({type(e).__name__})") from None
    if not isinstance(config, dict) or not isinstance(config.get("args"), dict):
        raise RunFolderError(f"{path} is damaged (no \"args\" object)")
    if not isinstance(config.get("resumed", []), list):
        raise RunFolderError(f"{path} is damaged (\"resumed\" is not a list)")
    return config


def now():
    """The time in UTC, as config.json records it: '2026-11-22T14:52:08+00:00'."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path, obj):
    """path (e.g. config.json) holding obj as indented JSON, replacing any old one atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def _versions(device):
    from .. import __version__
    versions = {"tinyresnet": __version__, "numpy": np.__version__,
                "python": platform.python_version()}
    if device == "gpu":
        versions["cupy"] = xp_for(device).__version__
    return versions


def device_name(device):
    """The machine a run trains on, as config.json records it: the GPU's name, or the CPU's model,
    cores and vector width."""
    if device == "gpu":
        cuda = xp_for(device).cuda
        name = cuda.runtime.getDeviceProperties(cuda.Device().id)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    return machine.cpu()
