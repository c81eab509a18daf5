"""What a training run leaves in its --out folder, besides the checkpoint (see checkpoint.py).

  log.csv      one row per epoch: LOG_COLUMNS, errors in percent; appended as the run goes,
               so a crash loses nothing that was logged
  config.json  the options, the exact command, the machine, the versions: where a log came from

Whole files are written atomically (a temporary file, then a rename), like the checkpoint.
"""
import csv
import json
import os
import platform
import tempfile
from datetime import datetime, timezone

import numpy as np

from .device import xp_for
from .options import WARMUP_LR, WARMUP_UNTIL, command_line, run_label, run_name, saved_args

CHECKPOINT, LOG, CONFIG = "checkpoint.npz", "log.csv", "config.json"
LOG_COLUMNS = ("iteration", "epoch", "lr", "train_loss", "train_error",
               "test_loss", "test_error", "wall_time")
LOG_FORMATS = {"iteration": "{:d}", "epoch": "{:g}", "lr": "{:g}", "train_loss": "{:.6f}",
               "train_error": "{:.4f}", "test_loss": "{:.6f}", "test_error": "{:.4f}",
               "wall_time": "{:.1f}"}


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


def make_config(args, state):
    """config.json of a new run: args from options.parse_args, state a train.State."""
    return {
        "name": run_name(args), "label": run_label(args),
        "command": command_line(args), "argv": list(getattr(args, "argv", [])),
        "args": saved_args(args),
        "device": args.device, "device_name": _device_name(args.device),
        "test_set": args.test_set,
        "train_images": len(state.train_loader.x), "test_images": len(state.test_loader.x),
        "batches_per_epoch": state.batches_per_epoch, "total_iterations": state.total,
        "schedule": f"lr {args.lr:g}, /10 at iterations {state.total // 2} and {state.total * 3 // 4}"
                    + (f"; warm-up at {WARMUP_LR:g} until training error < {WARMUP_UNTIL:.0%}"
                       if args.warmup else ""),
        "parameters": state.model.num_parameters(),
        "versions": _versions(args.device),
        "started": now(),
    }


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
    from . import __version__
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


def duration(seconds):
    """3725.2 -> '1h02m05s', 65 -> '1m05s'."""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
