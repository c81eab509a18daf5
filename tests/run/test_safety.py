"""A run never destroys what it did not write, and every failure is one line (issue 31, the run layer).

A new run refuses a folder that holds anything; a start that fails leaves the folder as it was;
a checkpoint is read only as far as it matches the run; crafted checkpoints, odd folder names,
huge depths, full disks, early signals and divergence end in one clear line.
All on the tiny fake CIFAR-10 of train_helpers.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyresnet import train
from tinyresnet.run import folder
from tinyresnet.run.checkpoint import load_checkpoint

pytest.register_assert_rewrite("train_helpers")
from train_helpers import exit_status, log_rows, tiny  # noqa: E402

pytest_plugins = ["train_helpers"]  # its fixtures: fake, no_network, short_reads
pytestmark = pytest.mark.train

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_RUN = ROOT / "lessons" / "results" / "cpu-budget" / "resnet20"  # log.csv and config.json, no checkpoint


@pytest.fixture(autouse=True)
def offline_with_short_reads(no_network, short_reads):
    """Every test here: no download can happen, and the running loss is read every 2 steps."""


def one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, f"want one line on stderr, got:\n{err}"
    return err


def snapshot(out):
    """Every file in out with its bytes: to show that a refused run touched nothing."""
    return {p.name: p.read_bytes() for p in Path(out).iterdir()}


def run_process(argv, **options):
    """python -m tinyresnet.train argv, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "tinyresnet.train", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, **options)


# ---------------------------------------------------------------- 1. a new run writes only into a new or empty folder

def test_a_new_run_refuses_the_committed_lesson_results(fake, tmp_path, capsys):
    """The committed runs have a log and a config but no checkpoint (checkpoints are not committed)."""
    out = tmp_path / "resnet20"
    shutil.copytree(COMMITTED_RUN, out)
    before = snapshot(out)
    assert exit_status(tiny(fake, out, "--iterations", "1")) == 2
    err = one_line(capsys)
    assert "log.csv and config.json" in err and "no checkpoint.npz" in err and "another --out" in err, err
    assert snapshot(out) == before, "a refused run changed the folder it was refused"


def test_a_new_run_refuses_a_folder_whose_checkpoint_was_deleted(fake, tmp_path, capsys):
    out = tmp_path / "run"
    train.main(tiny(fake, out, "--epochs", "1"))
    (out / "checkpoint.npz").unlink()
    before = snapshot(out)
    assert exit_status(tiny(fake, out, "--iterations", "1")) == 2
    assert "cannot be resumed" in one_line(capsys)
    assert snapshot(out) == before and len(log_rows(out)) == 1


def test_a_new_run_refuses_a_folder_with_other_files(fake, tmp_path, capsys):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert exit_status(tiny(fake, out, "--iterations", "1")) == 2
    err = one_line(capsys)
    assert "not empty" in err and "notes.txt" in err, err
    assert snapshot(out) == {"notes.txt": b"mine"}


def test_an_empty_out_is_refused_instead_of_writing_into_the_current_folder(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert exit_status(tiny(fake, "", "--iterations", "1")) == 2
    assert "--out must name a folder" in one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the run wrote into the current folder"


def test_an_empty_folder_takes_a_new_run(fake, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert train.main(tiny(fake, out, "--iterations", "1"))["iterations"] == 1


def test_a_failed_start_leaves_an_empty_folder_empty(fake, tmp_path, monkeypatch, capsys):
    """A full disk when config.json is written: the log.csv written just before goes too, so that
    the folder is still empty and takes the run once there is room."""
    out = tmp_path / "run"
    out.mkdir()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(json, "dump", disk_full)
    assert exit_status(tiny(fake, out, "--iterations", "1")) == 1
    assert "config.json" in one_line(capsys)
    assert snapshot(out) == {}, "the failed start left files behind"
    monkeypatch.undo()
    assert train.main(tiny(fake, out, "--iterations", "1"))["iterations"] == 1


# ---------------------------------------------------------------- 4. one line instead of a traceback

def test_a_folder_name_that_is_not_utf8_trains_on_a_strict_utf8_terminal(fake, tmp_path):
    out = os.fsencode(tmp_path) + b"/run-\xff"
    argv = [a.encode() for a in tiny(fake, "OUT", "--iterations", "1", quiet=False)]
    argv[argv.index(b"OUT")] = out
    done = subprocess.run([sys.executable.encode(), b"-m", b"tinyresnet.train", *argv], cwd=ROOT,
                          capture_output=True, timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0 and b"Traceback" not in done.stderr, stderr
    assert b"run-\\udcff/log.csv" in done.stdout, "the folder's name should be shown, its odd byte escaped"
    assert os.path.isfile(out + b"/checkpoint.npz")


def test_a_full_disk_at_the_lock_names_it_and_leaves_nothing(fake, tmp_path, monkeypatch, capsys):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to tell the lock file's descriptor apart")
    out = tmp_path / "run"
    write = os.write

    def full_for_the_lock(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(folder.LOCK):
            raise OSError(28, "No space left on device")
        return write(fd, data)
    monkeypatch.setattr(os, "write", full_for_the_lock)
    assert exit_status(tiny(fake, out, "--iterations", "1")) == 1
    err = one_line(capsys)
    assert "No space left on device" in err and str(out / folder.LOCK) in err, err
    assert not out.exists(), "the failed start left its folder (and an empty .lock) behind"


# ---------------------------------------------------------------- 5. divergence, small messages, early signals

def test_broken_weights_stop_the_run_before_their_row_is_logged(fake, tmp_path, monkeypatch, capsys):
    """The 6th step leaves NaN weights while its own loss is finite; epoch 2 is not measured
    (--eval-every 3), so only the checkpoint's check can see it: the row of iteration 6 must not be logged."""
    out = tmp_path / "nan"
    step, calls = train.train_step, [0]

    def breaks_the_weights(*args):
        result = step(*args)
        opt = args[1]
        calls[0] += 1
        if calls[0] == 6:
            opt.params[0].data[...] = np.nan
        return result
    monkeypatch.setattr(train, "train_step", breaks_the_weights)
    assert exit_status(tiny(fake, out, "--epochs", "3", "--eval-every", "3")) == 1
    err = one_line(capsys)
    assert "weights are no longer finite" in err and "at iteration 6" in err and "holds iteration 3" in err, err
    assert "finite at iteration 6" not in err, "it cannot have been finite at the iteration where it broke"
    assert [r[0] for r in log_rows(out)] == ["3"], "log.csv keeps a row the checkpoint does not have"
    assert load_checkpoint(out / "checkpoint.npz")["iteration"] == 3


def test_a_real_divergence_is_one_line_without_numpy_warnings(fake, tmp_path):
    done = run_process(tiny(fake, tmp_path / "lr", "--iterations", "4", "--lr", "1e30"))
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, f"NumPy's RuntimeWarnings came first:\n{done.stderr}"
    assert "diverged" in done.stderr and "RuntimeWarning" not in done.stderr
    assert "finite at iteration 0" not in done.stderr, "no loss was read before: it was never seen finite"


def test_subsets_larger_than_the_data_name_their_option(fake, tmp_path, capsys):
    assert exit_status(tiny(fake, tmp_path / "out", "--iterations", "1", "--test-subset", "20000")) == 2
    assert "--test-subset 20000: the test set has only 5 images" in one_line(capsys)
    assert exit_status(tiny(fake, tmp_path / "out", "--iterations", "1", "--val-split")) == 2
    assert "--val-split" in one_line(capsys)


def test_one_iteration_is_singular(fake, tmp_path, capsys):
    train.main(tiny(fake, tmp_path / "one", "--iterations", "1"))
    out = capsys.readouterr().out
    assert "ResNet-8: 1 iteration (" in out and "1 iterations" not in out, out


def test_sighup_while_starting_leaves_no_lock(fake, tmp_path):
    """A signal that arrives while the run is still starting (it holds the lock, the first step is not
    taken) stops it cleanly: status 129, one line, and no stale .lock or half-made folder."""
    out = tmp_path / "hup"
    process = subprocess.Popen([sys.executable, "-m", "tinyresnet.train", *tiny(fake, out, "--epochs", "400")],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / folder.LOCK).exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run took no lock in 60 s"
        time.sleep(0.001)
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 129, f"status {process.returncode}: {err}"
    assert len(err.strip().splitlines()) == 1 and "SIGHUP" in err, err
    assert not (out / folder.LOCK).exists(), "a stale .lock was left behind"
    if not (out / "checkpoint.npz").exists():
        assert not out.exists(), "a run stopped before it saved anything should leave no folder"


def test_the_lock_of_a_process_that_is_gone_is_taken_over_saying_so(fake, tmp_path, capsys):
    out = tmp_path / "stale"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / folder.LOCK).write_text(f"{dead.pid}\n")
    assert train.main(tiny(fake, out, "--iterations", "1"))["iterations"] == 1
    err = capsys.readouterr().err
    assert "took over" in err and f"process {dead.pid}" in err, err
