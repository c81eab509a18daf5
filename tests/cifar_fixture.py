"""A tiny synthetic CIFAR-10 in the official "python version" layout.

Each class has its own mean colour plus noise, so a small net can learn it,
and the files are laid out exactly like cifar-10-python.tar.gz unpacked:
root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}.
"""
import pickle
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]


def _images(n, rng):
    """n images: data (n, 3072) uint8 and labels (n,) int, colour = class."""
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    colours = np.random.default_rng(1234).integers(30, 226, size=(10, 3))  # same for train and test
    pixels = colours[labels][:, :, None, None] + rng.normal(0, 20, size=(n, 3, 32, 32))
    data = np.clip(pixels, 0, 255).astype(np.uint8).reshape(n, 3072)
    return data, labels


def _write(path, label, data, labels):
    batch = {b"batch_label": label.encode(),
             b"labels": [int(v) for v in labels],
             b"data": data,
             b"filenames": [f"fake_{label}_{i}.png".encode() for i in range(len(data))]}
    with open(path, "wb") as f:
        pickle.dump(batch, f)


def write_fake_cifar(root, n_train=300, n_test=100, seed=0):
    """Write the fake data set under root and return root (a Path)."""
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data, labels = _images(n_train, rng)
    for i, (d, l) in enumerate(zip(np.array_split(data, 5), np.array_split(labels, 5)), start=1):
        _write(folder / f"data_batch_{i}", f"training batch {i} of 5", d, l)
    _write(folder / "test_batch", "testing batch 1 of 1", *_images(n_test, rng))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES],
                     b"num_cases_per_batch": -(-n_train // 5), b"num_vis": 3072}, f)
    return root
