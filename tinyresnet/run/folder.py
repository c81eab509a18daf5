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

This module writes them and reads them back (plot.py draws what read_log gives). Whole files
are written atomically (a temporary file, then a rename), like the checkpoint.
"""
import csv
import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..device import xp_for
from .recipe import command_line, run_label

CHECKPOINT, LOG, CONFIG = "checkpoint.npz", "log.csv", "config.json"
LOG_COLUMNS = ("iteration", "epoch", "lr", "train_loss", "train_error",
               "test_loss", "test_error", "wall_time")
LOG_FORMATS = {"iteration": "{:d}", "epoch": "{:g}", "lr": "{:g}", "train_loss": "{:.6f}",
               "train_error": "{:.4f}", "test_loss": "{:.6f}", "test_error": "{:.4f}",
               "wall_time": "{:.1f}"}


class RunFolderError(Exception):
    """A folder, or a log in it, that is not what tinyresnet.train writes; explained in one line."""


# ------------------------------------------------------------------ names

def label_of(run_dir):
    """The paper's name of the run in run_dir: "ResNet-56", "plain-20"; the folder name if unknown."""
    config = read_config(run_dir)
    if "label" in config:
        return config["label"]
    args = config.get("args", {})
    if "depth" in args:
        return run_label(args["depth"], args.get("residual", True), args.get("shortcut", "A"))
    return _folder(run_dir).name


def _folder(run_dir):
    """The run folder, given it or its log.csv."""
    path = Path(run_dir)
    return path.parent if path.suffix == ".csv" else path


# ------------------------------------------------------------------ log.csv

def write_log(path, rows):
    """log.csv with a header and `rows`, replacing any old one atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LOG_COLUMNS)
        writer.writerows(_formatted(row) for row in rows)
    _publish(tmp, path)


def append_row(path, row):
    with open(path, "a", newline="") as f:  # closing flushes: the row is on disk at once
        csv.writer(f).writerow(_formatted(row))


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
        "command": command_line(argv), "argv": list(argv),
        "args": r.as_dict(),
        "device": r.device, "device_name": _device_name(r.device),
        "test_set": state.test_set,
        "train_images": len(state.train_loader.x), "test_images": len(state.test_loader.x),
        "batches_per_epoch": state.batches_per_epoch, "total_iterations": state.total,
        "schedule": str(state.opt.schedule),
        "parameters": state.model.num_parameters(),
        "versions": _versions(r.device),
        "started": now(),
    }


def read_config(run_dir):
    """run_dir/config.json as a dict ({} if there is none or it cannot be read)."""
    try:
        config = json.loads((_folder(run_dir) / CONFIG).read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def now():
    """The time in UTC, as config.json records it: '2026-11-22T14:52:08+00:00'."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path, obj):
    """path (e.g. config.json) holding obj as indented JSON, replacing any old one atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    _publish(tmp, path)


def _publish(tmp, path):
    """Give a finished temporary file its real name (one atomic step) and usual permissions."""
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _versions(device):
    from .. import __version__
    versions = {"tinyresnet": __version__, "numpy": np.__version__,
                "python": platform.python_version()}
    if device == "gpu":
        versions["cupy"] = xp_for(device).__version__
    return versions


def _device_name(device):
    if device == "gpu":
        cuda = xp_for(device).cuda
        name = cuda.runtime.getDeviceProperties(cuda.Device().id)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"
