"""A run survives what schedulers, users and full disks do to it (issue 15, the run layer).

SIGTERM and SIGHUP are stopped like Ctrl-C; a second run into the same --out is refused; a
damaged config.json or a crafted checkpoint gets one clear line; a changed length on --resume
is said and recorded; temporary files never pile up; small messages say what is wrong.
All on the tiny fake CIFAR-10 of train_helpers: a few seconds in all.
"""
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyresnet import optim, train
from tinyresnet.run import checkpoint as ckpt_module
from tinyresnet.run import folder
from tinyresnet.run.checkpoint import load_checkpoint, save_checkpoint

pytest.register_assert_rewrite("train_helpers")
from train_helpers import RECIPE, after_call, assert_same_run, exit_status, log_rows, tiny  # noqa: E402

pytest_plugins = ["train_helpers"]  # its fixtures: fake, uninterrupted, no_network, short_reads
pytestmark = pytest.mark.train


@pytest.fixture(autouse=True)
def offline_with_short_reads(no_network, short_reads):
    """Every test here: no download can happen, and the running loss is read every 2 steps."""


ROOT = Path(__file__).resolve().parents[2]


class Killed(Exception):
    """What SIGTERM or SIGHUP does in these tests when nothing else handles it (instead of killing pytest)."""


@pytest.fixture(autouse=True)
def signals_raise():
    """Outside a run, SIGTERM and SIGHUP raise Killed, so that a run that does not handle them fails
    its test instead of ending the test session."""
    def killed(signum, frame):
        raise Killed(signal.Signals(signum).name)
    previous = {s: signal.signal(s, killed) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, handler in previous.items():
        signal.signal(s, handler)


def one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def temporary_files(out):
    """What a half-done write of the checkpoint, log.csv or config.json leaves in out."""
    return sorted(p.name for p in Path(out).iterdir() if re.match(r"\.(checkpoint\.npz|log\.csv|config\.json)\.", p.name))


def disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


# ---------------------------------------------------------------- 4. SIGTERM and SIGHUP

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_save_say_so_and_exit_128_plus_the_signal(fake, tmp_path, monkeypatch, capsys,
                                                                   uninterrupted, signum):
    out = tmp_path / "signalled"
    step = train.train_step
    monkeypatch.setattr(train, "train_step", after_call(5, step, lambda: signal.raise_signal(signum)))
    assert exit_status(tiny(fake, out, *RECIPE)) == 128 + signum
    err = one_line(capsys)
    assert signal.Signals(signum).name in err and "stopped at iteration 5" in err and "--resume" in err
    assert load_checkpoint(out / "checkpoint.npz")["iteration"] == 5
    monkeypatch.setattr(train, "train_step", step)
    train.main(tiny(fake, out, *RECIPE, "--resume"))
    assert_same_run(out, uninterrupted[0])


def start_training(fake, out, epochs=400):
    """A real training process into out that runs for a while; returns once it has saved a checkpoint."""
    process = subprocess.Popen([sys.executable, "-m", "tinyresnet.train", *tiny(fake, out, "--epochs", str(epochs))],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.npz").is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the training process saved no checkpoint in 60 s"
        time.sleep(0.05)
    return process


def test_sigterm_to_the_process_saves_and_exits_143(fake, tmp_path):
    out = tmp_path / "terminated"
    process = start_training(fake, out)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and "SIGTERM" in err and "--resume" in err, err
    state = load_checkpoint(out / "checkpoint.npz")
    assert f"holds iteration {state['iteration']}" in err


# ---------------------------------------------------------------- 5. one run per --out

def test_a_second_run_into_the_same_out_is_refused_naming_the_holder(fake, tmp_path, capsys):
    out = tmp_path / "busy"
    holder = start_training(fake, out)
    try:
        rows = log_rows(out)
        assert exit_status(["--out", str(out), "--resume", "--quiet"]) == 2
        err = one_line(capsys)
        assert f"process {holder.pid}" in err and str(out) in err, err
        assert log_rows(out)[:len(rows)] == rows, "the refused run touched the holder's log"
    finally:
        holder.kill()
        holder.communicate()
    # killed with -9, the holder leaves its lock file behind: it must not block the next run
    assert (out / folder.LOCK).exists()
    done = load_checkpoint(out / "checkpoint.npz")["iteration"]
    summary = train.main(["--out", str(out), "--resume", "--quiet", "--iterations", str(done + 1)])
    assert summary["iterations"] == done + 1
    assert not (out / folder.LOCK).exists(), "a run that ends removes its lock"


def test_a_lock_left_by_a_dead_process_does_not_block(fake, tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / folder.LOCK).write_text(f"{dead.pid}\n")
    assert train.main(tiny(fake, out, "--iterations", "1"))["iterations"] == 1


def test_a_refused_or_failed_start_leaves_no_folder(fake, tmp_path, capsys):
    out = tmp_path / "never"
    assert exit_status(tiny(fake, out, "--subset", "4")) == 2  # batch 8 > 4 images: refused after the lock
    assert not out.exists(), "a run that wrote nothing should leave no folder behind"


# ---------------------------------------------------------------- 6. damaged config, crafted checkpoints

DAMAGED_CONFIGS = {"truncated": '{"name": "resnet8", "args": {', "not an object": "[1, 2, 3]",
                   "binary": "\x00\x01\x02", "resumed is not a list": '{"name": "resnet8", "resumed": 5}'}


@pytest.mark.parametrize("content", DAMAGED_CONFIGS.values(), ids=DAMAGED_CONFIGS.keys())
def test_resume_repairs_a_damaged_config_with_a_warning(fake, tmp_path, capsys, content):
    out = tmp_path / "run"
    train.main(tiny(fake, out, "--iterations", "2"))
    (out / "config.json").write_text(content)
    capsys.readouterr()
    assert train.main(["--out", str(out), "--resume", "--quiet", "--iterations", "4"])["iterations"] == 4
    err = capsys.readouterr().err
    assert "warning" in err and "config.json" in err, err
    config = json.loads((out / "config.json").read_text())
    assert config["args"]["depth"] == 8 and config["total_iterations"] == 4
    assert config["resumed"][-1]["iteration"] == 2


def crafted(out, **changes):
    """The checkpoint in out with some values replaced (nested keys as 'a.b')."""
    state = load_checkpoint(out / "checkpoint.npz")
    for key, value in changes.items():
        *path, last = key.split(".")
        target = state
        for k in path:
            target = target[k]
        target[last] = value
    save_checkpoint(out / "checkpoint.npz", state)


CRAFTED = {
    "negative iteration": {"iteration": -5, "optimizer.steps": -5},
    "iteration as text": {"iteration": "2"},
    "rows not a list": {"rows": "abc"},
    "rows of numbers": {"rows": [1, 2]},
    "a row with text": {"rows": [{"iteration": "x", "epoch": 1, "lr": 0.1, "train_loss": 1, "train_error": 1,
                                  "test_loss": 1, "test_error": 1, "wall_time": 1}]},
    "wall time as text": {"wall_time": "long"},
    "sums of the wrong kind": {"epoch_sums": {"loss": "a", "wrong": 0, "images": 0, "steps": 0}},
    "options of the wrong kind": {"args.lr": "fast"},
}


@pytest.mark.parametrize("changes", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_checkpoints_are_not_readable(fake, tmp_path, capsys, changes):
    out = tmp_path / "run"
    train.main(tiny(fake, out, "--iterations", "2"))
    crafted(out, **changes)
    assert exit_status(["--out", str(out), "--resume", "--quiet"]) == 2
    assert "not a readable tinyresnet checkpoint" in one_line(capsys)


# ---------------------------------------------------------------- 7. a new length on --resume

def test_a_new_length_is_said_on_stderr_even_when_quiet_and_recorded(fake, tmp_path, capsys):
    out = tmp_path / "longer"
    train.main(tiny(fake, out, "--iterations", "2"))
    capsys.readouterr()
    train.main(["--out", str(out), "--resume", "--quiet", "--iterations", "8"])
    err = capsys.readouterr().err
    assert "8 iterations instead of 2" in err and "iterations 4 and 6" in err, err
    assert "goes back up" in err, "the LR was 0.001 at iteration 2 and is 0.1 again: say so"
    config = json.loads((out / "config.json").read_text())
    assert config["total_iterations"] == 8 and config["args"]["iterations"] == 8
    assert config["schedule"] == "lr 0.1, /10 at iterations 4 and 6"
    assert config["resumed"][-1]["schedule"] == config["schedule"]


def test_help_and_readme_say_how_to_extend_a_run(capsys):
    assert exit_status(["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "extend" in help_text and "--resume" in help_text and "50% and 75% of the new length" in help_text
    readme = (ROOT / "README.md").read_text()
    assert "--resume --epochs N` extends a finished run" in readme


# ---------------------------------------------------------------- 9. leftovers and small messages

def test_temporary_files_left_by_a_killed_run_are_swept_at_start(fake, tmp_path):
    out = tmp_path / "run"
    train.main(tiny(fake, out, "--iterations", "1"))
    for name in (".checkpoint.npz.k1ll3d.tmp", ".log.csv.x8f2.tmp", ".config.json.a1b2.tmp"):
        (out / name).write_bytes(b"half a file")
    train.main(["--out", str(out), "--resume", "--quiet", "--iterations", "2"])
    assert temporary_files(out) == []


WRITERS = {"config.json": (json, "dump"), "log.csv": (folder.csv, "writer")}


@pytest.mark.parametrize("target", WRITERS)
def test_a_failed_write_names_the_file_and_leaves_no_temporary_file(fake, tmp_path, monkeypatch, capsys, target):
    out = tmp_path / "run"
    out.mkdir()
    monkeypatch.setattr(*WRITERS[target], disk_full)
    assert exit_status(tiny(fake, out, "--iterations", "1")) == 1
    assert target in one_line(capsys)
    assert temporary_files(out) == []


# the LR of a short run's last step, by the paper's rule (/10 at 50% and 75% of the run, never
# before the first step): 1 step trains at 0.1; 2 steps drop twice at step 1; 3 steps at 1 and 2
LAST_LR = {1: 0.1, 2: 0.001, 3: 0.001}


@pytest.mark.parametrize("iterations", sorted(LAST_LR))
def test_short_runs_drop_the_lr_after_the_first_step(fake, tmp_path, iterations):
    schedule = optim.paper_schedule(0.1, iterations)
    assert schedule(0) == pytest.approx(0.1) and min(schedule.milestones) >= 1, (
        f"a {iterations}-step run must take its first step at the full LR: milestones {schedule.milestones}")
    train.main(tiny(fake, tmp_path / "short", "--iterations", str(iterations)))
    lrs = [float(r[2]) for r in log_rows(tmp_path / "short")]
    assert lrs[-1] == pytest.approx(LAST_LR[iterations]), (
        f"a {iterations}-step run logs LR {lrs[-1]} at its last step; the paper's rule gives "
        f"{LAST_LR[iterations]} (milestones at max(1, n // 2) and max(1, 3n // 4))")


def test_quiet_keeps_the_summary(fake, tmp_path, capsys):
    train.main(tiny(fake, tmp_path / "quiet", "--iterations", "1"))
    out = capsys.readouterr().out
    assert "images/s" in out and "final: train error" in out
    assert not any(line.startswith("epoch ") for line in out.splitlines()), "--quiet: no per-epoch lines"


def test_quiet_run_from_python_stays_quiet(fake, tmp_path, capsys):
    train.run(depth=8, batch_size=8, iterations=1, data_dir=fake, out=tmp_path / "py", quiet=True)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("flag", ["--data-dir", "--out"])
def test_a_path_that_is_a_file_is_named(fake, tmp_path, capsys, flag):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    argv = tiny(fake, tmp_path / "out", "--iterations", "1")
    argv[argv.index(flag) + 1] = str(a_file)
    assert exit_status(argv) == 2
    err = one_line(capsys)
    assert str(a_file) in err and "not a folder" in err and "File exists" not in err


def test_a_full_disk_names_the_file_and_the_checkpoint_that_survived(fake, tmp_path, monkeypatch, capsys):
    out = tmp_path / "full"
    savez = np.savez
    calls = [0]

    def fills_up(f, **arrays):  # the first checkpoint (iteration 3) is written, the second fails half-way
        calls[0] += 1
        savez(f, **arrays)
        if calls[0] >= 2:
            f.truncate(f.tell() // 2)
            raise OSError(28, "No space left on device")
    monkeypatch.setattr(ckpt_module.np, "savez", fills_up)
    assert exit_status(tiny(fake, out, "--epochs", "2")) == 1
    err = one_line(capsys)
    assert "checkpoint.npz" in err and "No space left on device" in err and "holds iteration 3" in err, err
    monkeypatch.undo()
    assert load_checkpoint(out / "checkpoint.npz")["iteration"] == 3
    assert temporary_files(out) == []
