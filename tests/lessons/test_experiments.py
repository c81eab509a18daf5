"""lessons/experiments.py's so_far: how far a run has come, read from its log while it may still be
training. Lesson 06 prints the Table 6 run with it, so it must answer for every state a run folder
can be in when the notebook runs: no folder, no log, a header only, a row half written, rows without
a test error yet, a run in progress, a finished run, a run without its config.json.
"""
import json

import pytest

from experiments import so_far
from tinyresnet.run.folder import CONFIG, LOG, write_log

pytestmark = pytest.mark.lessons

NAN = float("nan")


def row(iteration, train_error, test_error=NAN):
    return {"iteration": iteration, "epoch": iteration // 10, "lr": 0.1, "train_loss": 1.0,
            "train_error": train_error, "test_loss": NAN if test_error != test_error else 1.0,
            "test_error": test_error, "wall_time": iteration / 10}


def run_folder(tmp_path, rows, total=100):
    folder = tmp_path / "resnet20"
    folder.mkdir()
    if total is not None:
        (folder / CONFIG).write_text(json.dumps({"args": {}, "total_iterations": total}))
    write_log(folder / LOG, rows)
    return folder


def test_no_folder_no_log_or_no_rows_is_none(tmp_path):
    assert so_far(tmp_path / "missing") is None, "a folder that does not exist has no rows"
    assert so_far(tmp_path) is None, "a folder without log.csv has no rows"
    assert so_far(run_folder(tmp_path, [])) is None, "a log with only its header has no rows"


def test_a_row_being_written_is_none(tmp_path):
    folder = run_folder(tmp_path, [row(10, 50.0)])
    with open(folder / LOG, "a") as f:
        f.write("20,2,0.1")   # the training process is halfway through its next row
    assert so_far(folder) is None, "a half-written row: nothing to read now, not a crash"


def test_in_progress_reports_the_last_row_and_the_last_test_error(tmp_path):
    folder = run_folder(tmp_path, [row(10, 60.0), row(20, 50.0, 55.0), row(30, 40.0)])
    got = so_far(folder)
    assert got["iteration"] == 30 and got["epoch"] == 3 and got["total"] == 100, got
    assert got["train_error"] == 40.0, f"the training error is the last row's: {got}"
    assert (got["test_error"], got["test_iteration"]) == (55.0, 20), (
        f"the test error is the last one measured (iteration 20), not the last row's NaN: {got}")
    assert got["finished"] is False


def test_before_the_first_test_error(tmp_path):
    got = so_far(run_folder(tmp_path, [row(10, 60.0)]))
    assert got["test_error"] is None and got["test_iteration"] is None, got


def test_finished_at_the_total(tmp_path):
    got = so_far(run_folder(tmp_path, [row(50, 40.0, 45.0), row(100, 30.0, 35.0)]))
    assert got["finished"] is True and got["test_error"] == 35.0, got


def test_without_config_the_total_is_unknown_and_not_finished(tmp_path):
    got = so_far(run_folder(tmp_path, [row(100, 30.0, 35.0)], total=None))
    assert got["total"] is None and got["finished"] is False, got
