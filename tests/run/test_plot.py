"""Fig. 6-style plots from run folders (fake logs: no training here)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyresnet import plot
from tinyresnet.plot import plot_runs
from tinyresnet.run.folder import RunFolderError, read_log

pytestmark = pytest.mark.plot

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["iteration", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "wall_time"]


def fake_run(folder, depth, residual, final_test, iterations=64000, per_epoch=391):
    """A run folder with a plausible log: errors fall, and drop where the LR does (32k, 48k)."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    its = np.arange(per_epoch, iterations + 1, per_epoch)
    lr = np.where(its < iterations / 2, 0.1, np.where(its < iterations * 3 / 4, 0.01, 0.001))
    level = final_test + 20 * np.exp(-its / 6000) + 4 * (lr == 0.1) + 1 * (lr == 0.01)
    rows = [[it, it / per_epoch, l, 0, e - final_test * 0.8, 0, e, it / 100] for it, l, e in zip(its, lr, level)]
    with open(folder / "log.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    label = f"ResNet-{depth}" if residual else f"plain-{depth}"
    (folder / "config.json").write_text(json.dumps({"label": label, "test_set": "test",
                                                    "args": {"depth": depth, "residual": residual}}))
    return folder


@pytest.fixture
def runs(tmp_path):
    return [fake_run(tmp_path / "plain20", 20, False, 9.0), fake_run(tmp_path / "plain56", 56, False, 13.0)]


def test_read_log_gives_columns(runs):
    log = read_log(runs[0])
    assert list(log) == COLUMNS
    assert log["iteration"][0] == 391 and log["iteration"].dtype == float
    assert len(log["test_error"]) == 163
    assert read_log(runs[0] / "log.csv")["test_error"][-1] == log["test_error"][-1]


def test_fig6_layout(runs):
    fig = plot_runs(runs)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 4  # per run: training (dashed) and test (bold), the same colour
    for train, test in (lines[0:2], lines[2:4]):
        assert train.get_linestyle() == "--" and test.get_linestyle() == "-"
        assert test.get_linewidth() > train.get_linewidth()
        assert train.get_color() == test.get_color()
    assert lines[0].get_color() != lines[2].get_color()
    assert ax.get_xlabel() == "iter. (1e4)" and ax.get_ylabel() == "error (%)"
    assert lines[1].get_xdata()[-1] == pytest.approx(6.3733, abs=1e-3)  # 63733 iterations in 1e4
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["plain-20", "plain-56", "training error", "test error"]


def test_short_runs_use_plain_iterations_and_custom_labels(tmp_path):
    run = fake_run(tmp_path / "short", 8, True, 30.0, iterations=300, per_epoch=30)
    fig = plot_runs([run], labels=["tiny"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "iterations" and ax.get_lines()[0].get_xdata()[-1] == 300
    assert ax.get_legend().get_texts()[0].get_text() == "tiny"


def test_draws_into_a_given_axes(runs):
    from matplotlib.figure import Figure
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plot_runs(runs[:1], ax=right) is fig
    assert len(right.get_lines()) == 2 and not left.get_lines()


def test_cli_writes_a_png(runs, tmp_path):
    png = tmp_path / "fig6.png"
    done = subprocess.run([sys.executable, "-m", "tinyresnet.plot", *map(str, runs), "-o", str(png)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_log_is_a_clear_error(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunFolderError, match=r"log\.csv: no such file"):
        read_log(empty)
    with pytest.raises(SystemExit) as e:
        plot.main([str(runs[0]), str(empty), "-o", str(tmp_path / "x.png")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "empty/log.csv" in err
    assert not (tmp_path / "x.png").exists()


def test_not_a_log(tmp_path):
    (tmp_path / "log.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunFolderError, match="not a training log"):
        read_log(tmp_path)


def test_long_runs_that_end_above_20_percent_stay_on_the_axes(tmp_path):
    paper_like = plot_runs([fake_run(tmp_path / "gpu", 56, True, 7.0)]).axes[0]
    assert paper_like.get_ylim() == (0, 20), "a paper-length run that ends below 20% gets the paper's axes"
    cpu = fake_run(tmp_path / "cpu", 56, True, 27.0, iterations=12500, per_epoch=625)
    ax = plot_runs([cpu]).axes[0]
    highest = max(max(line.get_ydata()) for line in ax.get_lines())
    assert ax.get_ylim()[1] >= highest, (
        f"the y axis stops at {ax.get_ylim()[1]:.1f}% but the run's errors reach {highest:.1f}%: "
        "a long run that ends above 20% error must not be drawn off the axes")


def test_lesson_figure6_shares_one_axis_that_fits_both_panels(tmp_path):
    import experiments  # lessons/ is on the path (conftest.py): lesson 06's two-panel figure
    plain = [fake_run(tmp_path / "plain56", 56, False, 62.0, iterations=12500, per_epoch=625)]
    residual = [fake_run(tmp_path / "resnet56", 56, True, 27.0, iterations=12500, per_epoch=625)]
    fig = experiments.figure6(plain, residual)
    highest = max(max(line.get_ydata()) for ax in fig.axes for line in ax.get_lines())
    for ax in fig.axes:
        assert ax.get_ylim()[1] >= highest, (
            f"panel '{ax.get_title()}' stops at {ax.get_ylim()[1]:.1f}% but a run reaches {highest:.1f}%: "
            "both panels share one y axis, so it must fit the runs of both")
