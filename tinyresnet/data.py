"""CIFAR-10: find, download, load, normalize, augment and batch it.

Everything here runs on the host with NumPy. Images stay uint8 (N, 3, 32, 32)
in memory (150 MB for the training set) and each minibatch is turned into
float32 only when it is needed, which is what the Loader does.

The preprocessing follows the ResNet paper (He et al. 2015, section 4.2):
subtract the per-pixel mean, pad 4 pixels on each side, take a random
32x32 crop and flip it horizontally half of the time.

The official files are Python pickles, and unpickling can run any code a
file asks for. So they are read with a restricted unpickler that builds only
what the official files contain (dicts, lists, numbers, strings and bytes,
and NumPy arrays) and refuses everything else before it runs. Then each
batch's contents are checked, never coerced: uint8 pixels of shape
(images, 3072), integer labels in 0..9, the official keys, and as many images
as batches.meta says each batch holds (10000 in the official files).

Downloads are checked against the archive's published MD5, and the unpacked
files against their published MD5s. A folder that is already there is not
hash-checked: legitimate copies differ byte for byte (the offline copy in
../shared is a JPEG re-encode), and the restricted unpickler is what makes
any folder safe to read.
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
META_FILE = "batches.meta"
# the published MD5 of each file in the official archive (the same values torchvision checks)
FILE_MD5 = {"data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}
BATCH_KEYS = {b"batch_label", b"labels", b"data", b"filenames"}
META_KEYS = {b"label_names", b"num_cases_per_batch", b"num_vis"}
# the only callables a CIFAR-10 pickle needs: rebuilding a NumPy array (NumPy 1 and 2 spell the module differently)
SAFE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}
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
    """Download, check and unpack cifar-10-python.tar.gz into root, then check each unpacked file."""
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
    for name, md5 in FILE_MD5.items():
        path = root / FOLDER / name
        if path.is_file() and _md5(path) != md5:
            raise DataError(f"{path}: MD5 checksum mismatch with the published one; delete {root / FOLDER} "
                            "and the archive, and run again")


class _CifarUnpickler(pickle.Unpickler):
    """Builds only what the official CIFAR-10 pickles contain; refuses any other callable before it runs."""

    def find_class(self, module, name):
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which no CIFAR-10 file contains "
                                     "(a pickle can run code); refused")


def _unpickle(path):
    """The dict in one CIFAR-10 pickle, read with the restricted unpickler; DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: CIFAR-10 file is missing; delete {path.parent} to re-download, or {HINT}")
    try:
        with open(path, "rb") as f:
            content = _CifarUnpickler(f, encoding="bytes").load()  # bytes: the files were written by Python 2
    except pickle.UnpicklingError as e:
        raise DataError(f"{path}: not loaded: {e}; delete {path.parent} to re-download") from None
    except Exception as e:  # anything can come out of a damaged pickle
        raise DataError(f"{path}: not a readable CIFAR-10 file ({type(e).__name__}); "
                        f"delete {path.parent} to re-download") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: not a CIFAR-10 file: it holds a {type(content).__name__}, not a dict")
    return content


def _check_keys(path, content, keys):
    if set(content) != keys:
        missing, extra = sorted(keys - set(content)), sorted(set(content) - keys, key=repr)
        raise DataError(f"{path}: not a CIFAR-10 file: keys {sorted(keys)} expected"
                        + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra[:5]}" if extra else ""))


def _read_meta(folder):
    """batches.meta: how many images each batch holds (10000 in the official files)."""
    path = folder / META_FILE
    meta = _unpickle(path)
    _check_keys(path, meta, META_KEYS)
    count, names = meta[b"num_cases_per_batch"], meta[b"label_names"]
    if type(count) is not int or count < 1:
        raise DataError(f"{path}: num_cases_per_batch must be a positive integer, got {count!r}")
    if meta[b"num_vis"] != 3 * 32 * 32:
        raise DataError(f"{path}: num_vis must be 3072 (32x32 RGB), got {meta[b'num_vis']!r}")
    if list(names) != [c.encode() for c in CLASSES]:
        raise DataError(f"{path}: label_names are not CIFAR-10's ten classes: {list(names)[:10]!r}")
    return count


def _read_batch(path, count):
    """One official batch -> x: (count, 3, 32, 32) uint8, y: (count,) int64; checked, never coerced."""
    batch = _unpickle(path)
    _check_keys(path, batch, BATCH_KEYS)
    x, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        kind = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{path}: pixels must be a uint8 array, got {kind}")
    if x.shape != (count, 3 * 32 * 32):
        raise DataError(f"{path}: pixels must have shape ({count}, 3072) ({count} images as batches.meta "
                        f"says, 32x32x3 values each), got {x.shape}")
    y = np.asarray(labels)
    if isinstance(labels, list) and not all(type(v) is int for v in labels):
        bad = next(v for v in labels if type(v) is not int)
        raise DataError(f"{path}: labels must be integers, got {bad!r} ({type(bad).__name__})")
    if not isinstance(labels, (list, np.ndarray)) or y.dtype.kind not in "iu" or y.shape != (count,):
        raise DataError(f"{path}: labels must be {count} integers, got {type(labels).__name__} "
                        f"of shape {y.shape} and dtype {y.dtype}")
    if y.min() < 0 or y.max() > 9:
        raise DataError(f"{path}: labels must lie in 0..9, got values from {y.min()} to {y.max()}")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def load_cifar10(data_dir=None, download=True):
    """The whole data set: x_train (50000, 3, 32, 32) uint8, y_train (50000,) int64,
    x_test (10000, 3, 32, 32) uint8, y_test (10000,) int64.

    Downloads it first (170 MB) when the folder is missing and download is True.
    Every file is read safely and checked (see the module docstring); a
    DataError names the file and what is wrong with it.
    """
    root = find_data_dir(data_dir)
    folder = root / FOLDER
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file, not a folder; {HINT}")
    if not folder.is_dir():
        if not download:
            raise DataError(f"{folder} not found; {HINT}")
        _fetch(root)
        if not folder.is_dir():
            raise DataError(f"{root}: the archive did not contain {FOLDER}/; {HINT}")
    count = _read_meta(folder)
    xs, ys = zip(*[_read_batch(folder / name, count) for name in TRAIN_FILES])
    x_test, y_test = _read_batch(folder / TEST_FILE, count)
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

    shuffle=True: a new random order every epoch, drawn from rng, and the last
    incomplete batch is dropped, so that every SGD step sees batch_size images.
    shuffle=False: the stored order, with the last partial batch kept, so that
    every image counts (evaluation).
    augment=True: random crop and flip each batch (see augment), drawn from rng.
    Iterating again starts a new epoch; the same rng seed gives the same batches.
    """

    def __init__(self, x, y, batch_size, mean, *, shuffle=False, augment=False, rng=None):
        if (shuffle or augment) and rng is None:
            raise DataError("Loader(shuffle=True or augment=True) needs rng, a numpy.random.Generator")
        if shuffle and len(x) < batch_size:
            raise DataError(f"batch_size {batch_size} is larger than the {len(x)} training images")
        self.x, self.y = x, np.asarray(y, dtype=np.int64)
        self.batch_size, self.mean, self.rng = batch_size, mean, rng
        self.shuffle, self.augment = shuffle, augment

    def __len__(self):
        n, b = len(self.x), self.batch_size
        return n // b if self.shuffle else -(-n // b)

    def __iter__(self):
        order = self.rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            xb = normalize(self.x[idx], self.mean)
            if self.augment:
                xb = augment(xb, self.rng)
            yield xb, self.y[idx]
