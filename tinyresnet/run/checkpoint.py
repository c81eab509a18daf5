"""Save and load training state: atomically, and without pickle.

A checkpoint is one .npz file (a zip of .npy arrays). The state is a nested
structure of dicts (string keys), lists, numbers, strings, None and NumPy
arrays. Its arrays are stored as .npy entries; everything else is stored as
one JSON document that names them. Loading uses `allow_pickle=False`, so a
checkpoint file can never run code (a pickle can).

Atomic means a reader sees either the old checkpoint or the new one, never
half of one (see atomic.py): if the program dies or the disk fills up while
writing, the previous checkpoint is untouched.
"""
import json
from pathlib import Path

import numpy as np

from ..device import device_of, to_device
from .atomic import atomic_write

FORMAT = "tinyresnet-checkpoint-1"
META = "__meta__"      # the .npz entry holding the JSON document
ARRAY = "__ndarray__"  # JSON marker: {"__ndarray__": "a3"} is the array stored as entry a3


class CheckpointError(Exception):
    """A checkpoint that is missing, damaged, or does not fit the run; explained in one line."""


def save_checkpoint(path, state):
    """Write `state` (a dict) to `path` atomically; the previous file survives any failure."""
    path = Path(path)
    arrays = {}
    meta = json.dumps({"format": FORMAT, "state": _pack(state, arrays)})
    with atomic_write(path, "wb", durable=True) as f:
        np.savez(f, **{META: np.frombuffer(meta.encode(), dtype=np.uint8)}, **arrays)


def load_checkpoint(path):
    """The dict saved by save_checkpoint; CheckpointError if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # every .npz is a zip file
                raise ValueError("not an .npz (zip) file")
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(npz[META].tobytes().decode())
            arrays = {name: npz[name] for name in npz.files if name != META}
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format') if isinstance(meta, dict) else None!r}, "
                             f"expected {FORMAT!r}")
        return _unpack(meta["state"], arrays)
    except Exception as e:  # a truncated zip, a bad JSON, a missing entry...
        reason = str(e).splitlines()[0] if str(e) else ""
        raise unreadable(path, f"{type(e).__name__}{': ' + reason if reason else ''}") from None


def unreadable(path, reason):
    """The CheckpointError for a file that is damaged or crafted, whatever is wrong in it."""
    return CheckpointError(f"{path}: not a readable tinyresnet checkpoint ({reason})")


def _pack(obj, arrays):
    """obj with every array replaced by {ARRAY: name}; the arrays go into `arrays`."""
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"checkpoint dict keys must be strings, got {list(obj)[:5]}")
        return {k: _pack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays) for v in obj]
    if isinstance(obj, np.generic):  # a NumPy scalar such as np.float32(0.5)
        return obj.item()
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):  # NumPy or CuPy array
        name = f"a{len(arrays)}"
        arrays[name] = np.asarray(to_device(obj, "cpu") if device_of(obj) == "gpu" else obj)
        return {ARRAY: name}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def _unpack(obj, arrays):
    if isinstance(obj, dict):
        if set(obj) == {ARRAY}:
            return arrays[obj[ARRAY]]
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj
