"""A tiny synthetic CIFAR-10 in the official "python version" layout.

Each class has its own mean colour plus noise, so a small net can learn it,
and the files are laid out exactly like cifar-10-python.tar.gz unpacked:
root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}, every
batch holding the number of images that batches.meta says (10000 in the real
files, `per_file` here).

By default the files are written as the official ones were: pickles made by
Python 2 (protocol 2, byte strings, NumPy's old module path), so that the
loader is tested on the format it will really meet. python2_style=False writes
today's pickles: protocol 4, as ../shared/data/prepare_cifar10.py does, or
protocol=2 as Python 3 writes it (bytes as calls to _codecs.encode).
"""
import pickle
import struct
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]


class Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official files: str and bytes as byte strings
    (BINSTRING), and NumPy's array rebuilder as numpy.core.multiarray._reconstruct."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_byte_string(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)
    dispatch[bytes] = save_byte_string
    dispatch[str] = save_byte_string

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dump(obj, path, python2_style=True, protocol=4):
    """Pickle obj into path, as the official files (Python 2) or as today's Python does at protocol."""
    with open(path, "wb") as f:
        if python2_style:
            Python2Pickler(f, protocol=2).dump(obj)
        else:
            pickle.dump(obj, f, protocol=protocol)


def _images(n, rng):
    """n images: data (n, 3072) uint8 and labels (n,) int, colour = class."""
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    colours = np.random.default_rng(1234).integers(30, 226, size=(10, 3))  # same for train and test
    pixels = colours[labels][:, :, None, None] + rng.normal(0, 20, size=(n, 3, 32, 32))
    data = np.clip(pixels, 0, 255).astype(np.uint8).reshape(n, 3072)
    return data, labels


def batch(label, data, labels):
    """One batch dict with the official keys."""
    return {b"batch_label": label.encode(),
            b"labels": [int(v) for v in labels],
            b"data": data,
            b"filenames": [f"fake_{label}_{i}.png".encode() for i in range(len(data))]}


def write_fake_cifar(root, per_file=60, seed=0, python2_style=True, protocol=4):
    """Write the fake data set under root (5 * per_file training and per_file test images); return root.
    python2_style and protocol: as in dump."""
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data, labels = _images(5 * per_file, rng)
    for i in range(5):
        part = slice(i * per_file, (i + 1) * per_file)
        dump(batch(f"training batch {i + 1} of 5", data[part], labels[part]),
             folder / f"data_batch_{i + 1}", python2_style, protocol)
    dump(batch("testing batch 1 of 1", *_images(per_file, rng)), folder / "test_batch", python2_style, protocol)
    dump({b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": per_file, b"num_vis": 3072},
         folder / "batches.meta", python2_style, protocol)
    return root
