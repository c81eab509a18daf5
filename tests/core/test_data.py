"""Tests for tinyresnet.data on a tiny fake CIFAR-10; none touches the network."""
import codecs
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cifar_fixture import batch, dump, write_fake_cifar
from tinyresnet import data
from tinyresnet.data import (DataError, Loader, augment, find_data_dir, load_cifar10,
                             normalize, per_pixel_mean, split_train_val, subset)

pytestmark = pytest.mark.data


@pytest.fixture
def fake(tmp_path):
    return write_fake_cifar(tmp_path / "cifar", per_file=60)  # 300 training, 60 test images


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
    assert x_te.shape == (60, 3, 32, 32) and x_te.dtype == np.uint8
    assert y_te.shape == (60,) and y_te.dtype == np.int64
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
    assert load_cifar10(folder, download=False)[2].shape == (60, 3, 32, 32)


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


NOT_A_FILE = {  # data_batch_2 replaced by something that is not a file: (how, what the message must say)
    "a folder": (lambda p: p.mkdir(), r"is a folder where the CIFAR-10 file should be"),
    "a symbolic link loop": (lambda p: p.symlink_to(p.name),
                             r"is a symbolic link to data_batch_2 that cannot be followed \(.+\)"),
    "a dangling symbolic link": (lambda p: p.symlink_to("nowhere"),
                                 r"is a symbolic link to nowhere that cannot be followed \(.+\)"),
    "a named pipe": (lambda p: os.mkfifo(p), r"is not a regular file \(a pipe, socket or device\)"),
}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes and symbolic links: POSIX only")
@pytest.mark.parametrize("kind", NOT_A_FILE, ids=lambda k: k.replace(" ", "-"))
def test_a_path_that_is_not_a_file_is_named_for_what_it_is(fake, kind):
    """Not "missing", and no advice to delete the whole data folder (issue 31 item 5)."""
    make, message = NOT_A_FILE[kind]
    path = fake / "cifar-10-batches-py" / "data_batch_2"
    path.unlink()
    make(path)
    with pytest.raises(DataError, match=rf"data_batch_2: {message}") as err:
        load_cifar10(fake, download=False)
    assert "missing" not in str(err.value) and "delete" not in str(err.value)


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
    assert not (tmp_path / "empty").exists()  # the failed attempt leaves no folder (issue 31 item 5)


def test_a_failed_download_removes_what_it_created_and_nothing_else(tmp_path, no_network):
    (tmp_path / "mine.txt").write_text("the user's")
    with pytest.raises(DataError, match="could not reach"):
        load_cifar10(tmp_path / "a" / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]  # neither a/ nor a/b/
    with pytest.raises(DataError, match="could not reach"):
        load_cifar10(tmp_path)  # a folder that was there stays, with what it held
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_an_interrupted_download_removes_what_it_created(tmp_path, monkeypatch):
    class Response(io.BytesIO):
        headers = {"Content-Length": "1000"}

        def read(self, size=-1):
            raise KeyboardInterrupt  # Ctrl-C in the middle of the download
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Response(b"x" * 1000))
    with pytest.raises(KeyboardInterrupt):
        load_cifar10(tmp_path / "client")
    assert not (tmp_path / "client").exists()  # no .part file, no folder


def test_md5_mismatch_deletes_download(tmp_path, monkeypatch):
    serve(monkeypatch, b"this is not the CIFAR-10 archive")
    with pytest.raises(DataError, match="MD5"):
        load_cifar10(tmp_path)
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()


def published(monkeypatch, payload, server):
    """Pretend that payload (the archive of the files in server) and its files are the published ones."""
    monkeypatch.setattr(data, "CIFAR_MD5", hashlib.md5(payload).hexdigest())
    folder = server / "cifar-10-batches-py"
    monkeypatch.setattr(data, "FILE_MD5", {p.name: data._md5(p) for p in folder.iterdir()})


def test_successful_download(tmp_path, monkeypatch):
    server = write_fake_cifar(tmp_path / "server", per_file=10)
    payload = tar_gz_of(server)
    serve(monkeypatch, payload)
    published(monkeypatch, payload, server)
    x_tr, y_tr, x_te, y_te = load_cifar10(tmp_path / "client")
    assert x_tr.shape == (50, 3, 32, 32) and x_te.shape == (10, 3, 32, 32)
    assert (tmp_path / "client" / "cifar-10-batches-py" / "batches.meta").is_file()


def test_unpacked_file_with_the_wrong_md5_is_named(tmp_path, monkeypatch):
    """The archive's MD5 matched, but a file in it is not the published one: named, before unpickling."""
    server = write_fake_cifar(tmp_path / "server", per_file=10)
    payload = tar_gz_of(server)
    serve(monkeypatch, payload)
    published(monkeypatch, payload, server)
    monkeypatch.setitem(data.FILE_MD5, "data_batch_4", "0" * 32)
    with pytest.raises(DataError, match=r"data_batch_4: MD5 checksum mismatch"):
        load_cifar10(tmp_path / "client")
    assert not (tmp_path / "client").exists()  # the download and what it unpacked are gone


def test_a_failed_unpack_keeps_an_archive_the_user_put_there(tmp_path, monkeypatch):
    """Only what the failed attempt created is removed: not an archive that was there before."""
    client = tmp_path / "client"
    client.mkdir()
    (client / "cifar-10-python.tar.gz").write_bytes(b"not a tar.gz")
    monkeypatch.setattr(data, "CIFAR_MD5", hashlib.md5(b"not a tar.gz").hexdigest())
    with pytest.raises(DataError, match="cannot unpack"):
        load_cifar10(client)
    assert [p.name for p in client.iterdir()] == ["cifar-10-python.tar.gz"]


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
    assert not (tmp_path / "client").exists()  # the attempt's download and folder are gone


# ------------------------------------------- poisoned and malformed files

class Payload:
    """What an attacker puts into a pickle: unpickling it runs code (here: only creates a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def rewrite(fake, name, change, python2_style=True):
    """Replace the fake folder's file `name` by change(its content)."""
    path = fake / "cifar-10-batches-py" / name
    with open(path, "rb") as f:
        content = pickle.load(f, encoding="bytes")
    dump(change(content), path, python2_style)


POISON_SPOTS = {
    "the whole file": lambda good, payload: payload,
    "the labels": lambda good, payload: {**good, b"labels": payload},
    "an extra key": lambda good, payload: {**good, b"note": payload},
}


@pytest.mark.parametrize("spot", POISON_SPOTS, ids=lambda s: s.replace(" ", "-"))
@pytest.mark.parametrize("name", ["data_batch_1", "test_batch", "batches.meta"])
@pytest.mark.parametrize("python2_style", [True, False], ids=["python2", "protocol4"])
def test_poisoned_pickle_runs_no_code(fake, tmp_path, name, spot, python2_style):
    marker = tmp_path / "payload-ran"
    rewrite(fake, name, lambda good: POISON_SPOTS[spot](good, Payload(marker)), python2_style)
    with pytest.raises(DataError, match=rf"{name}: not loaded: it asks for (builtins|__builtin__).exec, which no "
                                        r"CIFAR-10 file contains \(a pickle can run code\); refused"):
        load_cifar10(fake, download=False)
    assert not marker.exists(), f"loading {name} ran the code hidden in {spot}"


@pytest.mark.parametrize("python2_style, protocol", [(True, 2), (False, 4), (False, 2)],
                         ids=["python2", "protocol4", "python3-protocol2"])
def test_every_pickle_format_of_a_valid_batch_loads(tmp_path, python2_style, protocol):
    """Python 2's protocol-2 files (the official download), protocol 4 (the offline re-encode in ../shared)
    and a valid batch re-pickled at protocol 2 by Python 3, which writes bytes as _codecs.encode(text,
    'latin1') (issue 31 item 5)."""
    root = write_fake_cifar(tmp_path, per_file=10, python2_style=python2_style, protocol=protocol)
    x_tr, y_tr, x_te, y_te = load_cifar10(root, download=False)
    assert x_tr.shape == (50, 3, 32, 32) and y_te.shape == (10,)
    official = load_cifar10(write_fake_cifar(tmp_path / "official", per_file=10), download=False)
    for got, expected in zip((x_tr, y_tr, x_te, y_te), official):
        np.testing.assert_array_equal(got, expected)


class Encode:
    """Unpickles as _codecs.encode(*args), as protocol 2 writes bytes, but with the args given."""

    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return codecs.encode, self.args


@pytest.mark.parametrize("args", [("text", "rot13"), ("text", "latin1", "strict"), (b"text", "latin1")],
                         ids=["another-codec", "more-arguments", "not-text"])
def test_codecs_encode_is_allowed_only_as_protocol_2_uses_it(fake, args):
    rewrite(fake, "data_batch_1", lambda good: {**good, b"batch_label": Encode(*args)}, python2_style=False)
    with pytest.raises(DataError, match=r"data_batch_1: not loaded: it asks for _codecs.encode with other "
                                        r"arguments than \(text, 'latin1'\), which no CIFAR-10 file does; refused"):
        load_cifar10(fake, download=False)


@pytest.mark.skipif(not (Path(os.environ.get("TINYRESNET_DATA", "/nonexistent")) / "cifar-10-batches-py").is_dir(),
                    reason="real CIFAR-10 not prepared (set TINYRESNET_DATA)")
def test_the_real_files_pass_the_checks():
    folder = Path(os.environ["TINYRESNET_DATA"]) / "cifar-10-batches-py"
    assert data._read_meta(folder) == 10000
    x, y = data._read_batch(folder / "test_batch", 10000)
    assert x.shape == (10000, 3, 32, 32) and np.bincount(y).tolist() == [1000] * 10


MALFORMED = {  # what is wrong: (the file, how its content changes, the error it must give)
    "float pixels": ("data_batch_3", lambda b: {**b, b"data": b[b"data"].astype(np.float32)},
                     r"pixels must be a uint8 array, got dtype float32"),
    "int64 pixels out of range": ("data_batch_3", lambda b: {**b, b"data": b[b"data"].astype(np.int64) * 300},
                                  r"pixels must be a uint8 array, got dtype int64"),
    "pixels as a list": ("data_batch_3", lambda b: {**b, b"data": b[b"data"].tolist()},
                         r"pixels must be a uint8 array, got list"),
    "a 10-image batch": ("data_batch_3", lambda b: {**b, b"data": b[b"data"][:10], b"labels": b[b"labels"][:10]},
                         r"pixels must have shape \(60, 3072\) \(60 images as batches.meta says.*got \(10, 3072\)"),
    "images of another size": ("test_batch", lambda b: {**b, b"data": b[b"data"][:, :1024]},
                               r"pixels must have shape .*got \(60, 1024\)"),
    "float labels": ("data_batch_3", lambda b: {**b, b"labels": [7.5] + b[b"labels"][1:]},
                     r"labels must be integers, got 7.5 \(float\)"),
    "ragged nested labels": ("data_batch_3", lambda b: {**b, b"labels": [[0], [1, 2]] * 30},
                             r"labels must be integers, got a list of length 1"),
    "a label of 5000 digits": ("test_batch", lambda b: {**b, b"labels": [10**5000] + b[b"labels"][1:]},
                               r"labels must lie in 0..9, got values from 0 to an int of 16610 bits"),
    "boolean labels": ("data_batch_3", lambda b: {**b, b"labels": [True] * 60},
                       r"labels must be integers, got True \(bool\)"),
    "label 10": ("data_batch_3", lambda b: {**b, b"labels": [10] + b[b"labels"][1:]},
                 r"labels must lie in 0..9, got values from 0 to 10"),
    "label -1": ("test_batch", lambda b: {**b, b"labels": [-1] + b[b"labels"][1:]},
                 r"labels must lie in 0..9, got values from -1 to 9"),
    "too few labels": ("data_batch_3", lambda b: {**b, b"labels": b[b"labels"][:59]},
                       r"labels must be 60 integers, got a list of length 59"),
    "labels as text": ("data_batch_3", lambda b: {**b, b"labels": b"0123"},
                       r"labels must be 60 integers, got b'0123' \(bytes\)"),
    "labels as a float array": ("data_batch_3", lambda b: {**b, b"labels": np.zeros(60)},
                                r"labels must be 60 integers, got an array of shape \(60,\) and dtype float64"),
    "a key missing": ("test_batch", lambda b: {k: v for k, v in b.items() if k != b"filenames"},
                      r"not a CIFAR-10 file: keys .* expected; missing \[b'filenames'\]"),
    "an extra key": ("data_batch_1", lambda b: {**b, b"extra": 1}, r"not a CIFAR-10 file: .*unexpected \[b'extra'\]"),
    "not a dict": ("data_batch_5", lambda b: [b], r"not a CIFAR-10 file: it holds a list, not a dict"),
    "meta: a float count": ("batches.meta", lambda m: {**m, b"num_cases_per_batch": 60.0},
                            r"num_cases_per_batch must be an integer from 1 to 60000 .*, got 60.0 \(float\)"),
    "meta: a count of 5000 digits": ("batches.meta", lambda m: {**m, b"num_cases_per_batch": 10**5000},
                                     r"num_cases_per_batch must be an integer .*, got an int of 16610 bits"),
    "meta: num_vis": ("batches.meta", lambda m: {**m, b"num_vis": 1024},
                      r"num_vis must be 3072 \(32x32 RGB\), got 1024 \(int\)"),
    "meta: num_vis an array": ("batches.meta", lambda m: {**m, b"num_vis": np.array([3072, 3072])},
                               r"num_vis must be 3072 \(32x32 RGB\), got an array of shape \(2,\) and dtype int64"),
    "meta: class order": ("batches.meta", lambda m: {**m, b"label_names": m[b"label_names"][::-1]},
                          r"label_names must be CIFAR-10's ten classes in order, "
                          r"got b'truck' as class 0, not b'airplane'"),
    "meta: a class that is an array": ("batches.meta", lambda m: {**m, b"label_names": [np.arange(2)] * 10},
                                       r"label_names must be CIFAR-10's ten classes in order, got an array of "
                                       r"shape \(2,\) and dtype int64 as class 0"),
    "meta: label_names an int": ("batches.meta", lambda m: {**m, b"label_names": 10},
                                 r"label_names must be CIFAR-10's ten classes, got 10 \(int\)"),
    "meta: a key missing": ("batches.meta", lambda m: {k: v for k, v in m.items() if k != b"num_vis"},
                            r"not a CIFAR-10 file: .*missing \[b'num_vis'\]"),
}


@pytest.mark.parametrize("problem", MALFORMED, ids=lambda p: p.replace(" ", "-").replace(":", ""))
def test_malformed_file_is_refused_naming_it_and_the_problem(fake, problem):
    name, change, message = MALFORMED[problem]
    rewrite(fake, name, change)
    with pytest.raises(DataError, match=rf"{name}: {message}"):
        load_cifar10(fake, download=False)


def nested(depth):
    """A list nested in itself: L = [L, L], depth times. A few hundred bytes in a pickle (it stores
    each list once), 2**depth leaves for anything that walks it: NumPy, repr."""
    inner = [0]
    for _ in range(depth):
        inner = [inner, inner]
    return inner


UNBOUNDED = {  # a value of any size where a message would show it: (the file, how its content changes)
    "labels nested 27 times": ("data_batch_1", lambda b: {**b, b"labels": nested(27)}),
    "a label of a million bytes": ("data_batch_1", lambda b: {**b, b"labels": [b"x" * 10**6] + b[b"labels"][1:]}),
    "a key of a million bytes": ("test_batch", lambda b: {**b, b"x" * 10**6: 0}),
    "meta: a count that is a long list": ("batches.meta", lambda m: {**m, b"num_cases_per_batch": [0] * 10**5}),
    "meta: num_vis nested 20 times": ("batches.meta", lambda m: {**m, b"num_vis": nested(20)}),
    "meta: label_names nested 20 times": ("batches.meta", lambda m: {**m, b"label_names": [nested(20)] * 10}),
}


@pytest.mark.parametrize("problem", UNBOUNDED, ids=lambda p: p.replace(" ", "-").replace(":", ""))
def test_a_message_never_shows_a_value_of_unbounded_size(fake, problem):
    """The nested labels took 41 s and 4.3 GB to convert and printed a 335 MB "one-line" error
    (issue 31 item 2a): their type and length are checked before anything walks them."""
    name, change = UNBOUNDED[problem]
    rewrite(fake, name, change)
    with pytest.raises(DataError, match=rf"{name}: ") as err:
        load_cifar10(fake, download=False)
    message = str(err.value)
    assert len(message) < 300 and "\n" not in message, f"a message of {len(message)} characters"


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


def test_loader_shuffled_drops_last(arrays):
    x, y, mean = arrays
    loader = Loader(x, y, 64, mean, shuffle=True, augment=True, rng=np.random.default_rng(0))
    batches = list(loader)
    assert len(loader) == len(batches) == 300 // 64
    for xb, yb in batches:
        assert xb.shape == (64, 3, 32, 32) and xb.dtype == np.float32
        assert yb.shape == (64,) and yb.dtype == np.int64
    seen = np.concatenate([yb for _, yb in batches])
    assert len(seen) == 256 and not np.array_equal(seen, y[:256])  # shuffled


def test_loader_unshuffled_keeps_order_and_partial(arrays):
    x, y, mean = arrays
    loader = Loader(x, y, 64, mean)
    batches = list(loader)
    assert len(loader) == len(batches) == 5
    assert [len(yb) for _, yb in batches] == [64, 64, 64, 64, 44]
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), y)
    np.testing.assert_allclose(np.concatenate([xb for xb, _ in batches]), normalize(x, mean))


def test_loader_shuffle_and_augment_are_separate(arrays):
    x, y, mean = arrays
    shuffled = list(Loader(x, y, 60, mean, shuffle=True, rng=np.random.default_rng(0)))
    order = np.random.default_rng(0).permutation(len(x))
    for i, (xb, yb) in enumerate(shuffled):
        idx = order[i * 60:(i + 1) * 60]
        np.testing.assert_array_equal(yb, y[idx])
        np.testing.assert_array_equal(xb, normalize(x[idx], mean))  # shuffled, not augmented
    augmented = list(Loader(x, y, 60, mean, augment=True, rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in augmented]), y)  # order kept
    assert not np.array_equal(augmented[0][0], normalize(x[:60], mean))         # but cropped and flipped


def test_loader_deterministic_under_seed(arrays):
    x, y, mean = arrays

    def two_epochs(seed):
        loader = Loader(x, y, 32, mean, shuffle=True, augment=True, rng=np.random.default_rng(seed))
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
        Loader(x, y, 32, mean, shuffle=True)
    with pytest.raises(DataError, match="rng"):
        Loader(x, y, 32, mean, augment=True)
    with pytest.raises(DataError, match="batch_size"):
        Loader(x, y, 1000, mean, shuffle=True, rng=np.random.default_rng(0))


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
