"""What the training tests share: a tiny fake CIFAR-10, short command lines, readers of a run
folder, and ways to interrupt a run at a chosen step.

Depth 8, 25 training images in batches of 8 (3 steps per epoch), 5 test images: each run
takes a fraction of a second. A test module loads the fixtures with
`pytest_plugins = ["train_helpers"]` and turns on the two that every training test wants
(no_network, short_reads) with an autouse fixture of its own.
"""
import csv
import signal
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cifar_fixture import write_fake_cifar
from tinyresnet import optim, train
from tinyresnet.run import folder
from tinyresnet.run.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return write_fake_cifar(tmp_path_factory.mktemp("cifar"), per_file=5)


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails as if offline."""
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")
    monkeypatch.setattr(urllib.request, "urlopen", offline)


def read_often(mp):
    """Read the running loss every 2 steps, so that the reads (NaN checks, warm-up) happen in
    these short runs, and end the warm-up at the first read (the error is always < 101%), so
    that its state matters when resuming."""
    mp.setattr(train, "READ_EVERY", 2)
    mp.setattr(optim, "WARMUP_UNTIL", 1.01)


@pytest.fixture
def short_reads(monkeypatch):
    read_often(monkeypatch)


def tiny(fake, out, *more, quiet=True):
    return ["--depth", "8", "--batch-size", "8", "--data-dir", str(fake), "--out", str(out),
            *(["--quiet"] if quiet else []), *more]


RECIPE = ("--epochs", "2", "--warmup")  # 6 steps, LR drops at 3 and 4


def log_rows(out, keep_time=False):
    with open(Path(out) / "log.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(folder.LOG_COLUMNS)
    return [r if keep_time else r[:-1] for r in rows[1:]]


def weights(out):
    return load_checkpoint(Path(out) / "checkpoint.npz")["model"]


def after_call(n, fn, action):
    """fn, but action() runs after its n-th call returns."""
    calls = [0]

    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        calls[0] += 1
        if calls[0] == n:
            action()
        return result
    return wrapper


def ctrl_c():
    signal.raise_signal(signal.SIGINT)


def keyboard_interrupt():
    raise KeyboardInterrupt


@pytest.fixture(scope="module")
def uninterrupted(fake, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "uninterrupted"
    with pytest.MonkeyPatch.context() as mp:
        read_often(mp)
        summary = train.main(tiny(fake, out, *RECIPE))
    return out, summary


def assert_same_run(out, reference):
    assert log_rows(out) == log_rows(reference)
    a, b = weights(out), weights(reference)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def exit_status(argv):
    with pytest.raises(SystemExit) as e:
        train.main(argv)
    return e.value.code
