"""Tests for tinyresnet.data on a tiny fake CIFAR-10; none touches the network."""
import hashlib
import io
import pickle
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from cifar_fixture import write_fake_cifar
from tinyresnet import data
from tinyresnet.data import (DataError, Loader, augment, find_data_dir, load_cifar10,
                             normalize, per_pixel_mean, split_train_val, subset)

pytestmark = pytest.mark.data


@pytest.fixture
def fake(tmp_path):
    return write_fake_cifar(tmp_path / "cifar", n_train=300, n_test=100)


@pytest.fixture
def no_network(monkeypatch):
    """Make any attempt to download fail as if we were offline."""
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")
    monkeypatch.setattr(urllib.request, "urlopen", offline)


def serve(monkeypatch, payload):
    """Make urlopen answer with payload bytes, like a real HTTP response."""
    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Response(payload))


def tar_gz_of(root):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue()


# ---------------------------------------------------------------- loading

def test_load_shapes_dtypes_values(fake):
    x_tr, y_tr, x_te, y_te = load_cifar10(fake, download=False)
    assert x_tr.shape == (300, 3, 32, 32) and x_tr.dtype == np.uint8
    assert y_tr.shape == (300,) and y_tr.dtype == np.int64
    assert x_te.shape == (100, 3, 32, 32) and x_te.dtype == np.uint8
    assert y_te.shape == (100,) and y_te.dtype == np.int64
    assert set(y_tr.tolist()) == set(range(10))
    # first row of data_batch_1 is the first training image, channel-major
    with open(fake / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    np.testing.assert_array_equal(x_tr[0], raw[b"data"][0].reshape(3, 32, 32))
    assert y_tr[0] == raw[b"labels"][0]


def test_env_var_is_honored(fake, monkeypatch):
    monkeypatch.setenv("TINYRESNET_DATA", str(fake))
    assert find_data_dir() == fake
    assert load_cifar10(download=False)[0].shape == (300, 3, 32, 32)


def test_argument_beats_env_var(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYRESNET_DATA", str(tmp_path / "elsewhere"))
    assert find_data_dir(fake) == fake


def test_default_is_user_cache(monkeypatch):
    monkeypatch.delenv("TINYRESNET_DATA", raising=False)
    assert find_data_dir().parts[-2:] == (".cache", "tinyresnet")


def test_batches_folder_itself_is_accepted(fake):
    folder = fake / "cifar-10-batches-py"
    assert find_data_dir(folder) == fake
    assert load_cifar10(folder, download=False)[2].shape == (100, 3, 32, 32)


def test_missing_batch_file_is_named(fake):
    missing = fake / "cifar-10-batches-py" / "data_batch_3"
    missing.unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(fake, download=False)


@pytest.mark.parametrize("content", [b"garbage bytes, not a pickle", b""])
def test_corrupt_batch_file_is_named(fake, content):
    (fake / "cifar-10-batches-py" / "test_batch").write_bytes(content)
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(fake, download=False)


def test_wrong_keys_or_size_is_named(fake):
    path = fake / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    with pytest.raises(DataError, match="data_batch_2"):
        load_cifar10(fake, download=False)
    path.write_bytes(pickle.dumps({b"pixels": np.zeros((4, 3072), np.uint8)}))
    with pytest.raises(DataError, match="data_batch_2"):
        load_cifar10(fake, download=False)


def test_missing_folder_without_download(tmp_path):
    with pytest.raises(DataError, match="TINYRESNET_DATA"):
        load_cifar10(tmp_path, download=False)


def test_offline_gives_hint(tmp_path, no_network):
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path / "empty")
    message = str(err.value)
    assert data.CIFAR_URL in message and "could not reach" in message
    assert "--data-dir" in message and "TINYRESNET_DATA" in message
    assert "\n" not in message
    assert not list((tmp_path / "empty").iterdir())  # no half-written download left


def test_md5_mismatch_deletes_download(tmp_path, monkeypatch):
    serve(monkeypatch, b"this is not the CIFAR-10 archive")
    with pytest.raises(DataError, match="MD5"):
        load_cifar10(tmp_path)
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()


def test_successful_download(tmp_path, monkeypatch):
    payload = tar_gz_of(write_fake_cifar(tmp_path / "server", n_train=50, n_test=20))
    serve(monkeypatch, payload)
    monkeypatch.setattr(data, "CIFAR_MD5", hashlib.md5(payload).hexdigest())
    x_tr, y_tr, x_te, y_te = load_cifar10(tmp_path / "client")
    assert x_tr.shape == (50, 3, 32, 32) and x_te.shape == (20, 3, 32, 32)
    assert (tmp_path / "client" / "cifar-10-batches-py" / "batches.meta").is_file()


def test_unsafe_archive_is_refused(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    serve(monkeypatch, buf.getvalue())
    monkeypatch.setattr(data, "CIFAR_MD5", hashlib.md5(buf.getvalue()).hexdigest())
    with pytest.raises(DataError, match="cannot unpack"):
        load_cifar10(tmp_path / "client")
    assert not (tmp_path / "escaped.txt").exists()


# ---------------------------------------------------------- preprocessing

def test_per_pixel_mean_and_normalize(fake):
    x_tr = load_cifar10(fake, download=False)[0]
    mean = per_pixel_mean(x_tr)
    assert mean.shape == (3, 32, 32) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, (x_tr / 255.0).mean(axis=0), rtol=1e-6)
    z = normalize(x_tr, mean)
    assert z.dtype == np.float32 and z.shape == x_tr.shape
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(z, x_tr / 255.0 - mean, atol=1e-6)


def reference_augment(x, oy, ox, flip):
    """Slow, obvious version: pad, crop and flip one image at a time."""
    out = np.empty_like(x)
    for i in range(len(x)):
        p = np.pad(x[i], ((0, 0), (4, 4), (4, 4)))
        crop = p[:, oy[i]:oy[i] + 32, ox[i]:ox[i] + 32]
        out[i] = crop[:, :, ::-1] if flip[i] else crop
    return out


def test_augment_matches_reference_loop():
    x = np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32)
    out = augment(x, np.random.default_rng(7))
    rng = np.random.default_rng(7)  # replay the draws in the documented order
    oy, ox, flip = rng.integers(0, 9, 64), rng.integers(0, 9, 64), rng.random(64) < 0.5
    assert flip.any() and not flip.all() and (oy == 4).any()
    np.testing.assert_array_equal(out, reference_augment(x, oy, ox, flip))


def test_augment_identity_case():
    """Offset 4 (the unpadded image) without a flip returns the image unchanged."""
    x = np.random.default_rng(0).standard_normal((200, 3, 32, 32)).astype(np.float32)
    out = augment(x, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    oy, ox, flip = rng.integers(0, 9, 200), rng.integers(0, 9, 200), rng.random(200) < 0.5
    same = (oy == 4) & (ox == 4) & ~flip
    assert same.any()
    np.testing.assert_array_equal(out[same], x[same])


def test_augment_shape_dtype_determinism():
    x = np.random.default_rng(0).standard_normal((32, 3, 32, 32)).astype(np.float32)
    a = augment(x, np.random.default_rng(1))
    b = augment(x, np.random.default_rng(1))
    c = augment(x, np.random.default_rng(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_augment_flips_about_half():
    # each image is a left-to-right ramp; a flipped crop decreases instead
    ramp = np.broadcast_to(np.arange(1, 33, dtype=np.float32), (2000, 3, 32, 32))
    out = augment(ramp, np.random.default_rng(0))
    middle = out[:, 0, 16, 8:24]  # never touches the padding
    flipped = (np.diff(middle, axis=1) < 0).all(axis=1)
    assert ((np.diff(middle, axis=1) > 0).all(axis=1) | flipped).all()
    assert 0.45 < flipped.mean() < 0.55


def test_augment_pads_with_zeros():
    x = np.ones((500, 3, 32, 32), np.float32)
    out = augment(x, np.random.default_rng(0))
    has_zero = (out == 0).any(axis=(1, 2, 3))
    assert 0.5 < has_zero.mean() < 1  # shifted crops show padding, centred ones do not
    assert set(np.unique(out).tolist()) == {0.0, 1.0}
    # zeros only ever sit in the outer 4-pixel border
    assert (out[:, :, 4:28, 4:28] == 1).all()


# ---------------------------------------------------------------- Loader

@pytest.fixture
def arrays(fake):
    x_tr, y_tr, _, _ = load_cifar10(fake, download=False)
    return x_tr, y_tr, per_pixel_mean(x_tr)


def test_loader_train_drops_last(arrays):
    x, y, mean = arrays
    loader = Loader(x, y, 64, mean, train=True, rng=np.random.default_rng(0))
    batches = list(loader)
    assert len(loader) == len(batches) == 300 // 64
    for xb, yb in batches:
        assert xb.shape == (64, 3, 32, 32) and xb.dtype == np.float32
        assert yb.shape == (64,) and yb.dtype == np.int64
    seen = np.concatenate([yb for _, yb in batches])
    assert len(seen) == 256 and not np.array_equal(seen, y[:256])  # shuffled


def test_loader_eval_keeps_order_and_partial(arrays):
    x, y, mean = arrays
    loader = Loader(x, y, 64, mean, train=False)
    batches = list(loader)
    assert len(loader) == len(batches) == 5
    assert [len(yb) for _, yb in batches] == [64, 64, 64, 64, 44]
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), y)
    np.testing.assert_allclose(np.concatenate([xb for xb, _ in batches]), normalize(x, mean))


def test_loader_deterministic_under_seed(arrays):
    x, y, mean = arrays

    def two_epochs(seed):
        loader = Loader(x, y, 32, mean, train=True, rng=np.random.default_rng(seed))
        return [b for _ in range(2) for b in loader]

    a, b, c = two_epochs(5), two_epochs(5), two_epochs(6)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(ya, yc) for (_, ya), (_, yc) in zip(a, c))
    # a second epoch is a new shuffle, not a replay of the first
    assert not np.array_equal(a[0][1], a[len(a) // 2][1])


def test_loader_errors(arrays):
    x, y, mean = arrays
    with pytest.raises(DataError, match="rng"):
        Loader(x, y, 32, mean, train=True)
    with pytest.raises(DataError, match="batch_size"):
        Loader(x, y, 1000, mean, train=True, rng=np.random.default_rng(0))


# ------------------------------------------------------- splits and subsets

def test_split_train_val():
    x = np.arange(1000).reshape(1000, 1)
    y = np.arange(1000)
    x_tr, y_tr, x_val, y_val = split_train_val(x, y, val_size=100, seed=0)
    assert len(x_tr) == 900 and len(x_val) == 100
    assert not set(y_tr.tolist()) & set(y_val.tolist())
    assert sorted(y_tr.tolist() + y_val.tolist()) == list(range(1000))
    np.testing.assert_array_equal(x_val[:, 0], y_val)  # pairs stay together
    np.testing.assert_array_equal(split_train_val(x, y, 100, seed=0)[3], y_val)
    assert not np.array_equal(split_train_val(x, y, 100, seed=1)[3], y_val)


def test_split_default_is_paper_45k_5k():
    x = np.zeros((50000, 1), np.uint8)
    x_tr, _, x_val, _ = split_train_val(x, np.zeros(50000, np.int64))
    assert len(x_tr) == 45000 and len(x_val) == 5000


def test_subset():
    x = np.arange(100).reshape(100, 1)
    y = np.arange(100)
    xs, ys = subset(x, y, 10, seed=0)
    assert len(xs) == 10 and len(set(ys.tolist())) == 10
    np.testing.assert_array_equal(xs[:, 0], ys)
    np.testing.assert_array_equal(subset(x, y, 10, seed=0)[1], ys)
    assert len(subset(x, y, 100, seed=0)[1]) == 100


@pytest.mark.parametrize("n", [0, -1, 101])
def test_subset_errors(n):
    x = np.zeros((100, 1))
    with pytest.raises(DataError, match="subset"):
        subset(x, np.zeros(100), n, seed=0)
