"""Save and load training state: atomically, and without pickle.

A checkpoint is one .npz file (a zip of .npy arrays). The state is a nested
structure of dicts (string keys), lists, numbers, strings, None and NumPy
arrays. Its arrays are stored as .npy entries; everything else is stored as
one JSON document that names them. Loading reads that document first, then only the
arrays it names, each no larger than its .npy header declares (which the caller can check
against the model first, see open_checkpoint), and never a pickle: a checkpoint file can
never run code, nor make the reader decompress more than it expects.

Atomic means a reader sees either the old checkpoint or the new one, never
half of one (see atomic.py): if the program dies or the disk fills up while
writing, the previous checkpoint is untouched.
"""
import contextlib
import json
import math
import zipfile
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
    with open_checkpoint(path) as stored:
        return stored.read()


class Stored:
    """An array of a checkpoint that is not read yet: what its .npy header declares."""

    def __init__(self, member, shape, dtype, offset):
        self.member, self.shape, self.dtype = member, shape, dtype
        self.offset = offset  # where the data begins in the member, after the header

    @property
    def nbytes(self):
        return math.prod(self.shape) * self.dtype.itemsize

    def __repr__(self):
        return f"array of shape {self.shape} ({self.dtype})"


@contextlib.contextmanager
def open_checkpoint(path):
    """with open_checkpoint(path) as stored: look at stored.state, then stored.read().

    Only the JSON document is read at first: stored.state is the saved dict with each array
    a Stored (its shape and dtype, read from its .npy header), so that the caller can check
    every array against the model before a byte of it is read. stored.read() then reads the
    arrays, each exactly as large as its header says. A member of the zip that the document
    does not name is refused unread, so a small crafted file cannot make the reader
    decompress gigabytes. CheckpointError, naming the file, for anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    archive = None
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # every .npz is a zip file
                raise ValueError("not an .npz (zip) file")
        archive = zipfile.ZipFile(path)
        reader = _Reader(path, archive)
    except Exception as e:  # a truncated zip, a bad JSON, a missing entry, a crafted header...
        if archive is not None:
            archive.close()
        raise unreadable(path, _reason(e)) from None
    with archive:
        yield reader


def _reason(error):
    """An exception in a few words: 'ValueError: ...' (its first line, cut short)."""
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}{': ' + text if text else ''}"


class _Reader:
    """The zip of a checkpoint, open: its JSON document read and checked, its arrays not yet."""

    def __init__(self, path, archive):
        self.path, self.archive = path, archive
        names = archive.namelist()
        if len(set(names)) != len(names):
            raise ValueError("a member name appears twice")
        meta = self._array(f"{META}.npy", max_bytes=MAX_META_BYTES)
        if meta.dtype != np.uint8 or len(meta.shape) != 1:
            raise ValueError(f"its {META} is not text")
        meta = json.loads(self._read(meta).tobytes().decode())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format') if isinstance(meta, dict) else None!r}, "
                             f"expected {FORMAT!r}")
        named = _array_names(meta.get("state"))
        extra = sorted(set(names) - {f"{name}.npy" for name in named} - {f"{META}.npy"})
        if extra:
            raise ValueError(f"it holds {len(extra)} {'member' if len(extra) == 1 else 'members'} that "
                             f"no part of the checkpoint names ({', '.join(extra[:3])[:100]})")
        self.document = meta["state"]
        self.arrays = {name: self._array(f"{name}.npy") for name in named}
        self.state = _unpack(self.document, self.arrays)

    def read(self):
        """The saved dict, with its arrays read."""
        try:
            arrays = {name: self._read(stored) for name, stored in self.arrays.items()}
        except Exception as e:
            raise unreadable(self.path, _reason(e)) from None
        return _unpack(self.document, arrays)

    def _array(self, member, max_bytes=None):
        """The Stored for a member, from its .npy header (the first bytes only)."""
        with self.archive.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"{member}: .npy version {version} is not one np.savez writes")
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
        if fortran or dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
            raise ValueError(f"{member}: holds {dtype}{' in Fortran order' if fortran else ''}, "
                             "not an array of numbers")
        stored = Stored(member, tuple(shape), dtype, offset)
        declared = self.archive.getinfo(member).file_size
        if declared != offset + stored.nbytes:
            raise ValueError(f"{member}: its header declares {stored.nbytes} bytes of data, "
                             f"the zip {declared - offset}")
        if max_bytes is not None and stored.nbytes > max_bytes:
            raise ValueError(f"{member}: {stored.nbytes} bytes, more than {max_bytes}")
        return stored

    def _read(self, stored):
        """The array itself: exactly the bytes its header declares, and nothing after them."""
        array = np.empty(stored.shape, stored.dtype)
        into, got = memoryview(array.reshape(-1).view(np.uint8)), 0
        with self.archive.open(stored.member) as f:
            f.read(stored.offset)
            while got < stored.nbytes:
                n = f.readinto(into[got:])
                if not n:
                    break
                got += n
            if got != stored.nbytes or f.read(1):
                raise ValueError(f"{stored.member}: not {stored.nbytes} bytes of data as its header says")
        return array


MAX_META_BYTES = 64 << 20  # the JSON document: options, log rows, random state; a few kB in practice


def _array_names(obj):
    """The names of the arrays that the JSON document refers to."""
    if isinstance(obj, dict):
        if set(obj) == {ARRAY}:
            if not isinstance(obj[ARRAY], str):
                raise ValueError(f"an array reference {str(obj[ARRAY])[:20]!r} is not a name")
            return [obj[ARRAY]]
        return [name for v in obj.values() for name in _array_names(v)]
    if isinstance(obj, list):
        return [name for v in obj for name in _array_names(v)]
    return []


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
