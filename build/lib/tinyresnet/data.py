"""CIFAR-10: find, download, load, normalize, augment and batch it.

Everything here runs on the host with NumPy. Images stay uint8 (N, 3, 32, 32)
in memory (150 MB for the training set) and each minibatch is turned into
float32 only when it is needed, which is what the Loader does.

The preprocessing follows the ResNet paper (He et al. 2015, section 4.2):
subtract the per-pixel mean, pad 4 pixels on each side, take a random
32x32 crop and flip it horizontally half of the time.
"""
import hashlib
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PAD = 4
HINT = f"pass --data-dir DIR or set TINYRESNET_DATA=DIR, where DIR contains {FOLDER}/"


class DataError(Exception):
    """A problem with the data files, explained in one line for the user."""


def find_data_dir(data_dir=None):
    """The folder that holds (or will hold) cifar-10-batches-py/.

    Looks at the argument, then $TINYRESNET_DATA, then ~/.cache/tinyresnet.
    Naming the cifar-10-batches-py folder itself is accepted too.
    """
    d = data_dir or os.environ.get("TINYRESNET_DATA") or Path.home() / ".cache" / "tinyresnet"
    d = Path(d).expanduser()
    return d.parent if d.name == FOLDER else d


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url, dest):
    """Stream url into dest with a progress bar; a partial download is never taken for dest."""
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(part, "wb") as f:
            size = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name) as bar:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
    except OSError as e:  # urllib.error.URLError is an OSError too
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise DataError(f"could not reach {url} ({reason}); to use a local copy, {HINT}") from None
    part.replace(dest)


def _fetch(root):
    """Download, check and unpack cifar-10-python.tar.gz into root."""
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    if not archive.exists():
        print(f"Downloading CIFAR-10 into {root}")
        _download(CIFAR_URL, archive)
    if _md5(archive) != CIFAR_MD5:
        archive.unlink()
        raise DataError(f"{archive}: MD5 checksum mismatch, the download is damaged and was deleted; run again")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")  # refuses absolute paths, "..", odd links
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"{archive}: cannot unpack ({e}); delete it and run again") from None


def _read_batch(path):
    """One official pickle -> x: (n, 3, 32, 32) uint8, y: (n,) int64."""
    if not path.is_file():
        raise DataError(f"{path}: CIFAR-10 batch file is missing; delete {path.parent} to re-download, or {HINT}")
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        x = np.asarray(batch[b"data"], dtype=np.uint8)
        y = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as e:  # anything can come out of a damaged pickle
        raise DataError(f"{path}: not a readable CIFAR-10 batch ({type(e).__name__}); delete {path.parent} to re-download") from None
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or y.shape != (len(x),) or y.min(initial=0) < 0 or y.max(initial=0) > 9:
        raise DataError(f"{path}: expected (n, 3072) pixels and n labels in 0..9, got {x.shape} and {y.shape}")
    return x.reshape(-1, 3, 32, 32), y


def load_cifar10(data_dir=None, download=True):
    """The whole data set: x_train (50000, 3, 32, 32) uint8, y_train (50000,) int64,
    x_test (10000, 3, 32, 32) uint8, y_test (10000,) int64.

    Downloads it first (170 MB) when the folder is missing and download is True.
    """
    root = find_data_dir(data_dir)
    folder = root / FOLDER
    if not folder.is_dir():
        if not download:
            raise DataError(f"{folder} not found; {HINT}")
        _fetch(root)
        if not folder.is_dir():
            raise DataError(f"{root}: the archive did not contain {FOLDER}/; {HINT}")
    xs, ys = zip(*[_read_batch(folder / name) for name in TRAIN_FILES])
    x_test, y_test = _read_batch(folder / TEST_FILE)
    return np.concatenate(xs), np.concatenate(ys), x_test, y_test


def per_pixel_mean(x_train):
    """Mean image of x_train (N, 3, 32, 32) uint8 scaled to [0, 1] -> (3, 32, 32) float32."""
    return (x_train.mean(axis=0, dtype=np.float64) / 255).astype(np.float32)


def normalize(x, mean):
    """x: (N, 3, 32, 32) uint8 -> float32 x/255 - mean, so an average pixel is 0."""
    out = x.astype(np.float32)
    out /= 255
    out -= mean
    return out


def augment(x, rng):
    """Random crop with 4-pixel zero padding plus random horizontal flip.

    x: (N, C, H, W) float32, already normalized, so the zero padding is an
    average pixel rather than black.
    Returns a new (N, C, H, W) array. Draws, in order, N row offsets,
    N column offsets and N coin flips from rng.
    """
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * PAD, w + 2 * PAD), x.dtype)
    padded[:, :, PAD:PAD + h, PAD:PAD + w] = x
    oy = rng.integers(0, 2 * PAD + 1, n)
    ox = rng.integers(0, 2 * PAD + 1, n)
    flip = rng.random(n) < 0.5
    rows = oy[:, None] + np.arange(h)                       # (N, H)
    cols = ox[:, None] + np.arange(w)                       # (N, W)
    cols = np.where(flip[:, None], cols[:, ::-1], cols)     # read right-to-left = mirror
    img = np.arange(n)[:, None, None, None]
    chan = np.arange(c)[None, :, None, None]
    return padded[img, chan, rows[:, None, :, None], cols[:, None, None, :]]


def _permutation(n, seed):
    return np.random.default_rng(seed).permutation(n)


def split_train_val(x, y, val_size=5000, seed=0):
    """Hold out val_size random examples (the paper's 45k/5k split).

    Returns x_tr, y_tr, x_val, y_val; the same seed always gives the same split.
    """
    if not 0 < val_size < len(x):
        raise DataError(f"val_size must be between 1 and {len(x) - 1}, got {val_size}")
    perm = _permutation(len(x), seed)
    tr, val = perm[val_size:], perm[:val_size]
    return x[tr], y[tr], x[val], y[val]


def subset(x, y, n, seed):
    """n random examples (no class balancing), for quick experiments."""
    if not 1 <= n <= len(x):
        raise DataError(f"subset size must be between 1 and {len(x)}, got {n}")
    keep = _permutation(len(x), seed)[:n]
    return x[keep], y[keep]


class Loader:
    """One epoch of minibatches: yields (x (B, 3, 32, 32) float32, y (B,) int64).

    train=True: shuffle with rng, augment, drop the last incomplete batch
    (so every step sees exactly batch_size images). train=False: keep the
    order, no augmentation, keep the last partial batch so every image counts.
    Iterating again starts a new epoch; the same rng seed gives the same batches.
    """

    def __init__(self, x, y, batch_size, mean, train, rng=None):
        if train and rng is None:
            raise DataError("Loader(train=True) needs rng, a numpy.random.Generator")
        if train and len(x) < batch_size:
            raise DataError(f"batch_size {batch_size} is larger than the {len(x)} training images")
        self.x, self.y = x, np.asarray(y, dtype=np.int64)
        self.batch_size, self.mean, self.train, self.rng = batch_size, mean, train, rng

    def __len__(self):
        n, b = len(self.x), self.batch_size
        return n // b if self.train else -(-n // b)

    def __iter__(self):
        order = self.rng.permutation(len(self.x)) if self.train else np.arange(len(self.x))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            xb = normalize(self.x[idx], self.mean)
            if self.train:
                xb = augment(xb, self.rng)
            yield xb, self.y[idx]
