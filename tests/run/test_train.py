"""The training script on a tiny fake CIFAR-10: files, exact resume, Ctrl-C, NaN, bad input.

Depth 8, 25 training images in batches of 8 (3 steps per epoch), 5 test
images: each run takes a fraction of a second. No test touches the network.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cifar_fixture import write_fake_cifar
from tinyresnet import functional, is_grad_enabled, train
from tinyresnet.run import checkpoint as ckpt_module
from tinyresnet.device import gpu_available
from tinyresnet.run.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinyresnet.run.folder import read_log

pytest.register_assert_rewrite("train_helpers")
from train_helpers import (RECIPE, after_call, assert_same_run, ctrl_c, exit_status,  # noqa: E402
                           keyboard_interrupt, log_rows, tiny)

pytest_plugins = ["train_helpers"]  # its fixtures: fake, uninterrupted, no_network, short_reads

pytestmark = pytest.mark.train


@pytest.fixture(autouse=True)
def offline_with_short_reads(no_network, short_reads):
    """Every test here: no download can happen, and the running loss is read every 2 steps."""


ROOT = Path(__file__).resolve().parents[2]
HAS_GPU = gpu_available()


# ---------------------------------------------------------------- files

def test_cli_run_writes_log_config_and_checkpoint(fake, tmp_path):
    out = tmp_path / "run"
    argv = ["--depth", "8", "--iterations", "2", "--batch-size", "8",
            "--data-dir", str(fake), "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "tinyresnet.train", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "images/s" in done.stdout and "Traceback" not in done.stderr
    rows = log_rows(out, keep_time=True)
    assert len(rows) == 1 and rows[0][0] == "2"  # the run ended mid-epoch: one row at its end
    assert all(np.isfinite(float(v)) for v in rows[0])
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == "python -m tinyresnet.train " + " ".join(argv)
    assert config["args"]["depth"] == 8 and config["label"] == "ResNet-8"
    assert config["device"] == "cpu" and config["test_set"] == "test"
    assert "numpy" in config["versions"] and config["total_iterations"] == 2
    state = load_checkpoint(out / "checkpoint.npz")
    assert state["iteration"] == 2 and state["args"]["batch_size"] == 8
    assert "running_var" in "".join(state["model"])


def test_help_exits_0(capsys):
    assert exit_status(["--help"]) == 0
    assert "--resume" in capsys.readouterr().out


def test_epoch_rows_and_summary(uninterrupted):
    out, summary = uninterrupted
    rows = log_rows(out, keep_time=True)
    assert [r[:2] for r in rows] == [["3", "1"], ["6", "2"]]
    assert rows[-1][2] == "0.001"  # /100 after 75% of the run
    assert summary["iterations"] == 6 and summary["epochs"] == 2
    assert summary["test_error"] == pytest.approx(float(rows[-1][6]), abs=1e-4)
    assert summary["best_test_error"] == pytest.approx(min(float(r[6]) for r in rows), abs=1e-4)
    assert summary["log"] == str(out / "log.csv") and summary["images_per_second"] > 0


def test_eval_every_measures_every_nth_epoch_and_the_last(fake, tmp_path, capsys):
    """--eval-every 2 on a 3-epoch run: the test set is measured after epochs 2 and 3 (the end);
    epoch 1 logs nan there, says so, and the summary's best is one of the measured epochs."""
    summary = train.main(tiny(fake, tmp_path / "run", "--epochs", "3", "--eval-every", "2", quiet=False))
    log = read_log(tmp_path / "run")
    measured = np.isfinite(log["test_error"])
    assert list(log["epoch"]) == [1, 2, 3] and list(measured) == [False, True, True], (
        f"test error measured at epochs {log['epoch'][measured]}, want 2 and 3")
    assert np.isfinite(log["train_error"]).all(), "the training error is logged every epoch"
    assert "not measured" in capsys.readouterr().out
    assert summary["best_test_error"] == pytest.approx(np.nanmin(log["test_error"]), abs=1e-4)
    assert summary["test_error"] == pytest.approx(log["test_error"][-1], abs=1e-4)


def test_the_progress_bar_says_something_every_step(fake, tmp_path, monkeypatch):
    """The loss is read from the device every READ_EVERY steps only; in between, the bar keeps
    the last reading and counts down to the next, so that it never looks frozen."""
    shown = []

    class Recording(train.tqdm):
        def set_postfix_str(self, s="", refresh=True):
            shown.append(s)
            super().set_postfix_str(s, refresh)
    monkeypatch.setattr(train, "tqdm", Recording)
    train.run(depth=8, iterations=3, batch_size=8, data_dir=str(fake), out=str(tmp_path / "run"))
    assert [s.split("(")[-1] for s in shown] == ["every 2 steps, next in 1)", "every 2 steps, next in 2)",
                                                 "every 2 steps, next in 1)"]
    assert shown[0].startswith("loss, error") and shown[1].startswith("loss ") and "img/s" in shown[1]


def test_run_api_matches_the_command_line(fake, tmp_path):
    summary = train.run(depth=8, residual=False, iterations=2, batch_size=8,
                        data_dir=str(fake), out=str(tmp_path / "plain"), quiet=True)
    assert summary["label"] == "plain-8" and Path(summary["log"]).is_file()
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert config["args"]["residual"] is False and "--plain" in config["command"]
    # resuming takes the options not given from the checkpoint; a finished run trains nothing more
    assert train.run(out=tmp_path / "plain", resume=True, quiet=True)["iterations"] == 2


def test_bn_batch_normalizes_slices_of_the_minibatch(fake, tmp_path, capsys):
    """--bn-batch B sets ghost batch norm on every batch norm of the net: B equal to the batch is
    plain batch norm (the same weights, bit for bit), a smaller B trains other weights."""
    from train_helpers import weights
    runs = {}
    for name, more in (("plain", ()), ("whole", ("--bn-batch", "8")), ("ghost", ("--bn-batch", "4"))):
        train.main(tiny(fake, tmp_path / name, "--iterations", "2", *more, quiet=name != "ghost"))
        runs[name] = weights(tmp_path / name)
    assert "batch norm over slices of 4" in capsys.readouterr().out
    for k in runs["plain"]:
        np.testing.assert_array_equal(runs["whole"][k], runs["plain"][k], err_msg=k)
    assert any(not np.array_equal(runs["ghost"][k], runs["plain"][k]) for k in runs["plain"]), \
        "--bn-batch 4 on batches of 8 must change the arithmetic"
    config = json.loads((tmp_path / "ghost" / "config.json").read_text())
    assert config["args"]["bn_batch"] == 4 and "--bn-batch 4" in config["command"]


def test_val_split_is_used_as_the_test_columns(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train, "VAL_SIZE", 17)
    train.main(tiny(fake, tmp_path / "val", "--iterations", "1", "--val-split", quiet=False))
    assert "held out" in capsys.readouterr().out
    config = json.loads((tmp_path / "val" / "config.json").read_text())
    assert config["test_set"] == "val" and config["train_images"] == 8 and config["test_images"] == 17


def test_first_lines_say_when_openblas_is_held_below_the_cpu(fake, tmp_path, monkeypatch, capsys):
    """A CPU run whose BLAS is pinned to narrower kernels than the CPU has says so, with the fix."""
    from tinyresnet.cpu import machine
    monkeypatch.setattr(machine, "narrower_than_cpu_note", lambda: "OPENBLAS_CORETYPE=Haswell makes ...")
    train.main(tiny(fake, tmp_path / "pinned", "--iterations", "1", quiet=False))
    assert "note: OPENBLAS_CORETYPE=Haswell" in capsys.readouterr().out
    monkeypatch.setattr(machine, "narrower_than_cpu_note", lambda: None)
    train.main(tiny(fake, tmp_path / "free", "--iterations", "1", quiet=False))
    assert "OPENBLAS_CORETYPE" not in capsys.readouterr().out


# ---------------------------------------------------------------- resume

def test_resume_after_an_epoch_matches_an_uninterrupted_run(fake, tmp_path, monkeypatch, capsys,
                                                            uninterrupted):
    out = tmp_path / "resumed"
    # Ctrl-C during the first epoch's evaluation: the run stops after saving at the epoch end
    evaluate = train.evaluate
    monkeypatch.setattr(train, "evaluate", after_call(1, evaluate, ctrl_c))
    assert exit_status(tiny(fake, out, *RECIPE)) == 130
    assert "iteration 3" in capsys.readouterr().err
    assert len(log_rows(out)) == 1
    monkeypatch.setattr(train, "evaluate", evaluate)
    # the options not typed again come from the checkpoint
    summary = train.main(["--out", str(out), "--resume", "--quiet"])
    assert summary["iterations"] == 6
    assert_same_run(out, uninterrupted[0])
    config = json.loads((out / "config.json").read_text())
    assert config["resumed"][0]["iteration"] == 3
    assert config["resumed"][0]["device_name"] == config["device_name"], (
        "each resumed stretch records the machine it trains on, as the first one does: a long run's "
        "wall time means something only with the machines it ran on")


def test_ctrl_c_mid_epoch_saves_and_resumes_exactly(fake, tmp_path, monkeypatch, capsys, uninterrupted):
    out = tmp_path / "ctrl_c"
    step = train.train_step
    monkeypatch.setattr(train, "train_step", after_call(5, step, ctrl_c))
    assert exit_status(tiny(fake, out, *RECIPE)) == 130
    err = capsys.readouterr().err
    assert "stopped at iteration 5" in err and "--resume" in err and "Traceback" not in err
    assert load_checkpoint(out / "checkpoint.npz")["iteration"] == 5
    assert len(log_rows(out)) == 1
    monkeypatch.setattr(train, "train_step", step)
    train.main(tiny(fake, out, *RECIPE, "--resume"))
    assert_same_run(out, uninterrupted[0])


def test_interrupt_inside_a_step_keeps_the_last_checkpoint(fake, tmp_path, monkeypatch, capsys,
                                                           uninterrupted):
    """A KeyboardInterrupt that lands mid-step (a second Ctrl-C) saves nothing half-done."""
    out = tmp_path / "hard_stop"
    step = train.train_step
    monkeypatch.setattr(train, "train_step", after_call(5, step, keyboard_interrupt))
    assert exit_status(tiny(fake, out, *RECIPE)) == 130
    err = capsys.readouterr().err
    assert "nothing saved" in err and "iteration 3" in err and "Traceback" not in err
    assert load_checkpoint(out / "checkpoint.npz")["iteration"] == 3
    monkeypatch.setattr(train, "train_step", step)
    train.main(tiny(fake, out, *RECIPE, "--resume"))
    assert_same_run(out, uninterrupted[0])


def test_resume_of_a_finished_run_trains_nothing(fake, tmp_path, uninterrupted):
    out = tmp_path / "done"
    train.main(tiny(fake, out, "--iterations", "2"))
    before = (out / "checkpoint.npz").read_bytes()
    summary = train.main(["--out", str(out), "--resume", "--quiet"])
    assert summary["iterations"] == 2 and (out / "checkpoint.npz").read_bytes() == before


def test_a_checkpoint_saved_before_bn_batch_existed_resumes(fake, tmp_path, monkeypatch, uninterrupted):
    """Runs saved before --bn-batch have no bn_batch in their options: they normalized whole
    minibatches, and resume as such, exactly."""
    out = tmp_path / "older"
    evaluate = train.evaluate
    monkeypatch.setattr(train, "evaluate", after_call(1, evaluate, ctrl_c))  # stop after epoch 1
    assert exit_status(tiny(fake, out, *RECIPE)) == 130
    monkeypatch.setattr(train, "evaluate", evaluate)
    state = load_checkpoint(out / "checkpoint.npz")
    del state["args"]["bn_batch"]
    save_checkpoint(out / "checkpoint.npz", state)
    train.main(["--out", str(out), "--resume", "--quiet"])
    assert_same_run(out, uninterrupted[0])


def test_resume_can_lengthen_the_run(fake, tmp_path, capsys):
    out = tmp_path / "longer"
    train.main(tiny(fake, out, "--iterations", "2"))
    train.main(["--out", str(out), "--resume", "--iterations", "4"])
    assert "instead of 2" in capsys.readouterr().err  # a warning: on stderr, even with --quiet (issue 15)
    assert [r[0] for r in log_rows(out)] == ["2", "3", "4"]  # 3: the end of epoch 1


# ---------------------------------------------------------------- divergence

def test_nan_loss_stops_with_the_iteration_and_keeps_the_checkpoint(fake, tmp_path, monkeypatch, capsys):
    out = tmp_path / "nan"
    calls = [0]
    cross_entropy = functional.cross_entropy

    def poisoned(logits, labels):  # from the 5th training step on, the loss (and so the weights) is NaN
        loss = cross_entropy(logits, labels)
        if is_grad_enabled():
            calls[0] += 1
            if calls[0] >= 5:
                return loss * float("nan")
        return loss
    monkeypatch.setattr(functional, "cross_entropy", poisoned)
    monkeypatch.setattr(train, "READ_EVERY", 20)
    assert exit_status(tiny(fake, out, "--epochs", "3")) == 1
    err = capsys.readouterr().err.strip()
    assert "nan" in err and "at iteration 6" in err and "finite at iteration 3" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    state = load_checkpoint(out / "checkpoint.npz")
    assert state["iteration"] == 3
    assert all(np.isfinite(w).all() for w in state["model"].values())
    assert len(log_rows(out)) == 1


# ---------------------------------------------------------------- bad input

def corrupt_copy(fake, tmp_path):
    data = write_fake_cifar(tmp_path / "corrupt", per_file=5)
    (data / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"this is not a pickle")
    return data


BAD = {
    "depth 21": (["--depth", "21"], "6n+2"),
    "depth abc": (["--depth", "abc"], "invalid int"),
    "batch size 0": (["--batch-size", "0"], "--batch-size must be at least 1"),
    "negative lr": (["--lr", "-1"], "--lr"),
    "plain and residual": (["--plain", "--residual"], "not allowed with"),
    "epochs and iterations": (["--epochs", "1", "--iterations", "3"], "not allowed with"),
    "unknown option": (["--bogus"], "unrecognized"),
    "subset too large": (["--subset", "1000"], "--subset 1000: the training set has only 25 images"),
    "batch larger than subset": (["--subset", "4"], "larger than the 4 training images"),
    "resume without checkpoint": (["--resume"], "no checkpoint"),
}


@pytest.mark.parametrize("extra, message", BAD.values(), ids=BAD.keys())
def test_bad_options_give_one_line_and_status_2(fake, tmp_path, capsys, extra, message):
    assert exit_status(tiny(fake, tmp_path / "out", "--iterations", "1", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err and "Traceback" not in err


def test_missing_data_and_no_network(tmp_path, capsys):
    assert exit_status(tiny(tmp_path / "empty", tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not reach" in err


def test_corrupt_batch_file(fake, tmp_path, capsys):
    assert exit_status(tiny(corrupt_copy(fake, tmp_path), tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data_batch_3" in err


@pytest.mark.skipif(HAS_GPU, reason="a GPU is usable here")
def test_gpu_without_one(fake, tmp_path, capsys):
    assert exit_status(tiny(fake, tmp_path / "out", "--device", "gpu")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gpu" in err and "--device cpu" in err
    assert not (tmp_path / "out").exists()


def test_bad_input_from_the_command_line_has_no_traceback(fake, tmp_path):
    """The real process: status 2, and stderr is one line (a corrupt file and a bad depth)."""
    for argv in (tiny(corrupt_copy(fake, tmp_path), tmp_path / "out"), ["--depth", "21"]):
        done = subprocess.run([sys.executable, "-m", "tinyresnet.train", *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_resume_refuses_a_different_recipe(fake, tmp_path, capsys):
    out = tmp_path / "run"
    train.main(tiny(fake, out, "--iterations", "1"))
    assert exit_status(tiny(fake, out, "--iterations", "1", "--resume", "--plain")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--residual, not --plain" in err


def test_new_run_will_not_overwrite_an_old_one(fake, tmp_path, capsys):
    out = tmp_path / "run"
    train.main(tiny(fake, out, "--iterations", "1"))
    assert exit_status(tiny(fake, out, "--iterations", "1")) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_from_a_corrupt_checkpoint(fake, tmp_path, capsys):
    out = tmp_path / "run"
    train.main(tiny(fake, out, "--iterations", "1"))
    data = (out / "checkpoint.npz").read_bytes()
    (out / "checkpoint.npz").write_bytes(data[:len(data) // 2])
    assert exit_status(tiny(fake, out, "--resume")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a readable tinyresnet checkpoint" in err


# ---------------------------------------------------------------- checkpoint files

def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    rng.random(3)
    state = {"w": {"conv.weight": np.arange(6, dtype=np.float32).reshape(2, 3)},
             "velocity": [None, np.ones(2)], "rng": rng.bit_generator.state,
             "lr": 0.1, "done": True, "rows": [{"loss": float("nan"), "iteration": 3}]}
    save_checkpoint(tmp_path / "c.npz", state)
    back = load_checkpoint(tmp_path / "c.npz")
    np.testing.assert_array_equal(back["w"]["conv.weight"], state["w"]["conv.weight"])
    assert back["w"]["conv.weight"].dtype == np.float32 and back["velocity"][0] is None
    assert back["lr"] == 0.1 and back["done"] is True and np.isnan(back["rows"][0]["loss"])
    again = np.random.default_rng()
    again.bit_generator.state = back["rng"]
    assert again.random() == rng.random()


def test_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {"iteration": 1, "w": np.ones(3)})
    savez = np.savez

    def disk_full(f, **arrays):  # write half a file, then fail
        savez(f, **arrays)
        f.truncate(f.tell() // 2)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ckpt_module.np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"iteration": 2, "w": np.zeros(3)})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["iteration"] == 1 and state["w"].tolist() == [1, 1, 1]
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # no temporary file left behind


@pytest.mark.parametrize("content", [None, b"", b"garbage", b"PK\x03\x04 truncated zip"])
def test_unreadable_checkpoints(tmp_path, content):
    path = tmp_path / "checkpoint.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="checkpoint"):
        load_checkpoint(path)


# ---------------------------------------------------------------- gpu

@pytest.mark.standin
def test_a_gpu_run_resumes_on_the_cpu(fake, tmp_path, monkeypatch):
    """A run trained on the GPU (here the stand-in, tests/helpers/standin.py) continues on a machine
    without one: its checkpoint holds host arrays, and --device cpu on --resume moves the run."""
    import standin
    standin.install(monkeypatch)
    out = tmp_path / "gpu"
    assert train.main(tiny(fake, out, "--iterations", "3", "--device", "gpu"))["iterations"] == 3
    summary = train.main(["--out", str(out), "--resume", "--iterations", "6", "--device", "cpu", "--quiet"])
    assert summary["iterations"] == 6, f"the resumed run should reach iteration 6 on the CPU: {summary}"
    config = json.loads((out / "config.json").read_text())
    assert config["device"] == "gpu" and config["resumed"][-1]["device"] == "cpu", (
        f"config.json must say the run began on the GPU and went on on the CPU: {config['device']}, "
        f"{config['resumed']}")
    assert [int(r[0]) for r in log_rows(out)][-1] == 6


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA device")
def test_gpu_run_matches_cpu(fake, tmp_path):
    cpu = train.main(tiny(fake, tmp_path / "cpu", "--iterations", "3"))
    gpu = train.main(tiny(fake, tmp_path / "gpu", "--iterations", "3", "--device", "gpu"))
    for key in ("train_loss", "test_loss"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-3)
    # a GPU run resumes on the CPU
    train.main(["--out", str(tmp_path / "gpu"), "--resume", "--iterations", "6", "--device", "cpu", "--quiet"])
