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
and NumPy arrays; and bytes as Python 3 writes them at protocol 2, with
_codecs.encode(text, 'latin1')) and refuses everything else before it runs.
Then each batch's contents are checked, never coerced: uint8 pixels of shape
(images, 3072), integer labels in 0..9, the official keys, and as many images
as batches.meta says each batch holds (10000 in the official files). Types and
lengths are checked before anything walks a value, and a message shows a
value only when it is short (see _short): a list nested in itself is a few
hundred bytes in a pickle and gigabytes to convert or to print.

Downloads are checked against the archive's published MD5, and the unpacked
files against their published MD5s. A folder that is already there is not
hash-checked: legitimate copies differ byte for byte (the offline copy in
../shared is a JPEG re-encode), and the restricted unpickler is what makes
any folder safe to read.
"""
import codecs
import hashlib
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
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
IMAGES = 60000  # CIFAR-10's 50000 training and 10000 test images: no batch can hold more
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
    """Download, check and unpack cifar-10-python.tar.gz into root, then check each unpacked file.

    An attempt that fails, Ctrl-C included, removes what it created and nothing else: the folders
    it made, its download (finished or .part) and what it unpacked. An archive that was there
    before is kept, unless its MD5 is wrong.
    """
    archive = root / ARCHIVE
    made = [path for path in (root / FOLDER, archive, archive.with_name(archive.name + ".part"))
            if not os.path.lexists(path)]
    made_dirs = [d for d in (root, *root.parents) if not os.path.lexists(d)]  # innermost first
    try:
        root.mkdir(parents=True, exist_ok=True)
        _download_and_unpack(root, archive)
    except BaseException:
        _remove(made, made_dirs)
        raise


def _download_and_unpack(root, archive):
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
        raise DataError(f"{archive}: cannot unpack ({e}); delete it if it is still there, and run again") from None
    for name, md5 in FILE_MD5.items():
        path = root / FOLDER / name
        if path.is_file() and _md5(path) != md5:
            raise DataError(f"{path}: MD5 checksum mismatch with the published one; "
                            f"what was unpacked is deleted; run again, or {HINT}")


def _remove(made, made_dirs):
    """Remove the files and folders in made, then the folders in made_dirs that are left empty."""
    for path in made:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for d in made_dirs:
        try:
            d.rmdir()  # only an empty folder: whatever someone else put there meanwhile stays
        except OSError:
            break


def _latin1_encode(*args):
    """What protocol 2, written by Python 3, calls to rebuild bytes: _codecs.encode(text, 'latin1').
    Harmless with exactly these arguments; any other codec or argument is refused."""
    if len(args) != 2 or type(args[0]) is not str or args[1] != "latin1":
        raise pickle.UnpicklingError("it asks for _codecs.encode with other arguments than (text, 'latin1'), "
                                     "which no CIFAR-10 file does; refused")
    return codecs.encode(args[0], "latin1")


class _CifarUnpickler(pickle.Unpickler):
    """Builds only what the official CIFAR-10 pickles contain; refuses any other callable before it runs."""

    def find_class(self, module, name):
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"it asks for {module[:80]}.{name[:80]}, which no CIFAR-10 file contains "
                                     "(a pickle can run code); refused")


def _check_is_file(path):
    """DataError saying what path is when it is not a file: missing, a folder, a broken link..."""
    if path.is_file():
        return
    if path.is_symlink():  # one that cannot be followed: is_file() would have followed it
        try:
            path.stat()
        except OSError as e:
            raise DataError(f"{path}: is a symbolic link to {os.readlink(path)} that cannot be followed "
                            f"({e.strerror}); point it at the CIFAR-10 file, or {HINT}") from None
    if path.is_dir():
        raise DataError(f"{path}: is a folder where the CIFAR-10 file should be; put the file there, or {HINT}")
    if path.exists():
        raise DataError(f"{path}: is not a regular file (a pipe, socket or device) where the CIFAR-10 file "
                        f"should be; put the file there, or {HINT}")
    raise DataError(f"{path}: CIFAR-10 file is missing; delete {path.parent} to re-download, or {HINT}")


def _unpickle(path):
    """The dict in one CIFAR-10 pickle, read with the restricted unpickler; DataError naming the file."""
    _check_is_file(path)
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


def _short(value, typed=False):
    """How a message shows a value read from a file: its repr when that is short (with its type when
    typed), else its type and size, e.g. 'a list of length 2'. A file can hold a value of any size:
    a list nested in itself 27 times is a few hundred bytes on disk and 335 MB as text."""
    if (type(value) in (bool, float) or (type(value) is int and abs(value) < 10**18)
            or (type(value) in (bytes, str) and len(value) <= 40)):
        return f"{value!r} ({type(value).__name__})" if typed else repr(value)
    if type(value) is int:
        return f"an int of {value.bit_length()} bits"  # its digits could be thousands
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype.name}"
    if isinstance(value, (bytes, str, list, tuple, dict)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def _check_keys(path, content, keys):
    if set(content) != keys:
        missing = sorted(keys - set(content))
        extra = [_short(k) for k in content if k not in keys][:5]
        raise DataError(f"{path}: not a CIFAR-10 file: keys {sorted(keys)} expected"
                        + (f"; missing {missing}" if missing else "")
                        + (f"; unexpected [{', '.join(extra)}]" if extra else ""))


def _read_meta(folder):
    """batches.meta: how many images each batch holds (10000 in the official files)."""
    path = folder / META_FILE
    meta = _unpickle(path)
    _check_keys(path, meta, META_KEYS)
    count, vis, names = meta[b"num_cases_per_batch"], meta[b"num_vis"], meta[b"label_names"]
    if type(count) is not int or not 1 <= count <= IMAGES:
        raise DataError(f"{path}: num_cases_per_batch must be an integer from 1 to {IMAGES} "
                        f"(CIFAR-10 has {IMAGES} images), got {_short(count, typed=True)}")
    if type(vis) is not int or vis != 3 * 32 * 32:
        raise DataError(f"{path}: num_vis must be 3072 (32x32 RGB), got {_short(vis, typed=True)}")
    expected = [c.encode() for c in CLASSES]
    if type(names) is not list or len(names) != len(expected):
        raise DataError(f"{path}: label_names must be CIFAR-10's ten classes, got {_short(names, typed=True)}")
    for i, (name, right) in enumerate(zip(names, expected)):
        if type(name) is not bytes or name != right:
            raise DataError(f"{path}: label_names must be CIFAR-10's ten classes in order, got {_short(name)} "
                            f"as class {i}, not {right!r}")
    return count


def _read_labels(path, labels, count):
    """The labels of one batch -> (count,) int64, checked before anything converts or walks them."""
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu" or labels.shape != (count,):
            raise DataError(f"{path}: labels must be {count} integers, got {_short(labels)}")
    elif type(labels) is list:
        if len(labels) != count:
            raise DataError(f"{path}: labels must be {count} integers, got {_short(labels)}")
        for v in labels:
            if type(v) is not int:  # bool is a subclass of int, and a label it is not
                raise DataError(f"{path}: labels must be integers, got {_short(v, typed=True)}")
    else:
        raise DataError(f"{path}: labels must be {count} integers, got {_short(labels, typed=True)}")
    low, high = min(labels), max(labels)  # Python ints or NumPy integers, never converted yet
    if low < 0 or high > 9:
        raise DataError(f"{path}: labels must lie in 0..9, got values from {_short(int(low))} to {_short(int(high))}")
    return np.array(labels, dtype=np.int64)


def _read_batch(path, count):
    """One official batch -> x: (count, 3, 32, 32) uint8, y: (count,) int64; checked, never coerced."""
    batch = _unpickle(path)
    _check_keys(path, batch, BATCH_KEYS)
    x = batch[b"data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        kind = f"dtype {x.dtype.name}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{path}: pixels must be a uint8 array, got {kind}")
    if x.shape != (count, 3 * 32 * 32):
        raise DataError(f"{path}: pixels must have shape ({count}, 3072) ({count} images as batches.meta "
                        f"says, 32x32x3 values each), got {x.shape}")
    return x.reshape(-1, 3, 32, 32), _read_labels(path, batch[b"labels"], count)


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
