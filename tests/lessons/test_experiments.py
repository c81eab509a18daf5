"""lessons/experiments.py's so_far and table6_figure: how far a run has come, read from its log while
it may still be training. Lesson 06 prints and draws the Table 6 run with them, so they must answer
for every state a run folder can be in when the notebook runs: no folder, no log, a header only, a
row half written, rows without a test error yet, a run in progress, a finished run, a run without
its config.json.
"""
import json

import pytest

import matplotlib

matplotlib.use("Agg")

from experiments import so_far, table6_figure  # noqa: E402
from tinyresnet.run.folder import CONFIG, LOG, write_log  # noqa: E402
from tinyresnet.run.recipe import ADDED_LATER  # noqa: E402

pytestmark = pytest.mark.lessons

NAN = float("nan")


def row(iteration, train_error, test_error=NAN):
    return {"iteration": iteration, "epoch": iteration // 10, "lr": 0.1, "train_loss": 1.0,
            "train_error": train_error, "test_loss": NAN if test_error != test_error else 1.0,
            "test_error": test_error, "wall_time": iteration / 10}


def run_folder(tmp_path, rows, total=100, schedule=""):
    folder = tmp_path / "resnet20"
    folder.mkdir()
    if total is not None:
        (folder / CONFIG).write_text(json.dumps({"args": {}, "total_iterations": total, "schedule": schedule}))
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


def test_the_best_test_error_is_the_lowest_measured_not_the_last(tmp_path):
    folder = run_folder(tmp_path, [row(10, 60.0, 30.0), row(20, 50.0, 25.0), row(30, 40.0, 28.0), row(40, 35.0)])
    got = so_far(folder)
    assert (got["best_test_error"], got["best_test_iteration"]) == (25.0, 20), (
        f"the best test error is the lowest one measured (25% at iteration 20), not the last (28%) "
        f"nor the first: {got}")
    assert got["wall_time"] == 4.0, f"the wall time is the last row's: {got}"


def test_before_the_first_test_error(tmp_path):
    got = so_far(run_folder(tmp_path, [row(10, 60.0)]))
    assert got["test_error"] is None and got["test_iteration"] is None, got
    assert got["best_test_error"] is None and got["best_test_iteration"] is None, got


def test_finished_at_the_total(tmp_path):
    got = so_far(run_folder(tmp_path, [row(50, 40.0, 45.0), row(100, 30.0, 35.0)]))
    assert got["finished"] is True and got["test_error"] == 35.0, got


def test_without_config_the_total_is_unknown_and_not_finished(tmp_path):
    got = so_far(run_folder(tmp_path, [row(100, 30.0, 35.0)], total=None))
    assert got["total"] is None and got["finished"] is False, got


def test_table6_figure_spans_the_whole_run_while_it_is_in_progress(tmp_path):
    import matplotlib.pyplot as plt
    folder = run_folder(tmp_path, [row(10, 60.0), row(20, 50.0, 55.0), row(30, 40.0)],
                        schedule="lr 0.1, /10 at iterations 50 and 75")
    ax = table6_figure(folder, 8.75).axes[0]
    try:
        assert ax.get_xlim() == (0, 100 / 1e4), f"x must span all 100 iterations (in units of 10^4): {ax.get_xlim()}"
        lines = {line.get_label(): line for line in ax.get_lines()}
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [60.0, 50.0, 40.0], (
            "the training error is one dashed line through every logged row")
        bold = [line for line in ax.get_lines() if line.get_linewidth() > 2]
        assert len(bold) == 1 and list(bold[0].get_ydata()) == [55.0], (
            "the test error is one bold line through the rows where it was measured, not the NaNs")
        paper = [line for label, line in lines.items() if "8.75" in label]
        assert paper and list(paper[0].get_ydata()) == [8.75, 8.75], "the paper's error is a horizontal line"
        drops = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":")
        assert drops == [50 / 1e4, 75 / 1e4], f"the LR drops are dotted lines at iterations 50 and 75: {drops}"
    finally:
        plt.close(ax.figure)


# ------------------------------------------------------------------ train_or_reuse: lesson 06's budget runs

def finished_budget_run(tmp_path, args):
    """A folder holding a finished run of CPU_BUDGET's recipe whose config.json records `args`."""
    folder = tmp_path / "plain20"
    folder.mkdir()
    (folder / CONFIG).write_text(json.dumps({"args": args, "total_iterations": 30}))
    write_log(folder / LOG, [row(10, 60.0), row(20, 50.0), row(30, 40.0, 45.0)])
    return folder


def test_a_finished_run_saved_before_an_option_existed_is_reused(tmp_path, monkeypatch):
    import experiments
    options = dict(experiments.CPU_BUDGET, depth=20, residual=False)
    args = experiments.recipe({**options, "out": str(tmp_path / "plain20")})
    for option in ADDED_LATER:
        del args[option]        # as in the committed runs, saved before --bn-batch existed
    finished_budget_run(tmp_path, args)
    monkeypatch.setattr(experiments, "run", lambda **kw: pytest.fail(
        "train_or_reuse trained again: an option missing from an older config.json must count as "
        "the value that run had in effect (recipe.ADDED_LATER), not as another recipe"))
    assert experiments.train_or_reuse("plain20", folder=tmp_path, **options) == tmp_path / "plain20"


def test_a_run_of_another_recipe_is_never_overwritten(tmp_path, monkeypatch):
    import experiments
    options = dict(experiments.CPU_BUDGET, depth=20, residual=False)
    args = experiments.recipe({**options, "out": str(tmp_path / "plain20")})
    finished_budget_run(tmp_path, {**args, "lr": 0.05})
    monkeypatch.setattr(experiments, "run", lambda **kw: pytest.fail("a run of another recipe was overwritten"))
    with pytest.raises(ValueError, match="lr 0.05 there, 0.1 asked"):
        experiments.train_or_reuse("plain20", folder=tmp_path, **options)


def test_every_committed_run_has_a_readable_recipe():
    """The lessons reuse the committed logs by their recipe: each must still read as one."""
    from experiments import RESULTS, saved_recipe
    folders = sorted(p.parent for p in RESULTS.glob("*/*/config.json"))
    assert folders, f"no committed runs found under {RESULTS}"
    unreadable = [str(f.relative_to(RESULTS)) for f in folders if saved_recipe(f) is None]
    assert not unreadable, (f"config.json of {unreadable} no longer reads as a recipe: an option added "
                            "since those runs needs its old value in tinyresnet.run.recipe.ADDED_LATER")


# ------------------------------------------------------------------ README's results table

def test_readme_results_table_holds_the_long_runs_final_errors():
    """README.md's Results table shows lesson 06's long run (cpu-fig6-b16-30ep): each net's final
    training and test error must be its log's last row, as printed there to two decimals."""
    import re
    from experiments import LESSONS, NETS, RESULTS, final_errors
    from tinyresnet.run.folder import label_of
    readme = (LESSONS.parent / "README.md").read_text()
    results = readme.split("## Results", 1)[1]
    rows = dict(re.findall(r"^\| ([\w-]+) \| ([\d.]+%) \| [\d.]+% \|$", results, re.M))
    test_rows = dict(re.findall(r"^\| ([\w-]+) \| [\d.]+% \| ([\d.]+%) \|$", results, re.M))
    for name in NETS:
        run = RESULTS / "cpu-fig6-b16-30ep" / name
        label, final = label_of(run), final_errors(run)
        logged = (f"{final['train_error']:.2f}%", f"{final['test_error']:.2f}%")
        assert (rows.get(label), test_rows.get(label)) == logged, (
            f"README.md's Results row for {label} says {rows.get(label)} / {test_rows.get(label)}, but "
            f"{run.relative_to(LESSONS.parent)}/log.csv ends at {logged[0]} / {logged[1]}")


def test_readme_table6_row_holds_the_full_runs_final_errors():
    """README.md's Table 6 row is the full-schedule run (cpu-table6): its iterations and final
    training and test error must be its finished log's last row, to two decimals."""
    import re
    from experiments import LESSONS, RESULTS, final_errors, is_finished
    run = RESULTS / "cpu-table6" / "resnet20"
    assert is_finished(run), f"{run.relative_to(LESSONS.parent)} has not reached its last iteration"
    results = (LESSONS.parent / "README.md").read_text().split("## Results", 1)[1]
    row = re.search(r"^\| tinyresnet, ResNet-20 \| ([\d,]+) \| ([\d.]+%) \| ([\d.]+%) \|$", results, re.M)
    assert row, "README.md's Results has no row '| tinyresnet, ResNet-20 | iterations | train % | test % |'"
    final = final_errors(run)
    logged = (f"{int(final['iteration']):,}", f"{final['train_error']:.2f}%", f"{final['test_error']:.2f}%")
    assert row.groups() == logged, (
        f"README.md's Table 6 row says {' / '.join(row.groups())}, but "
        f"{run.relative_to(LESSONS.parent)}/log.csv ends at {' / '.join(logged)}")


def lesson06_text(is_the_cell):
    """The source of the first markdown cell of lesson 06 that is_the_cell(cell) picks, its
    whitespace collapsed, so that a quoted phrase matches across line breaks."""
    import nbformat
    from experiments import LESSONS
    nb = nbformat.read(LESSONS / "06_degradation.ipynb", as_version=4)
    return " ".join(next(c.source for c in nb.cells if c.cell_type == "markdown" and is_the_cell(c)).split())


def assert_quoted(quoted, text, where):
    """Every phrase of quoted (what it says -> the phrase the logs give) stands in text."""
    wrong = {what: phrase for what, phrase in quoted.items() if phrase not in text}
    assert not wrong, f"lesson 06's {where} no longer matches the logs: expected {wrong}"


def test_lesson06_reading_of_the_table6_row_holds_the_logs_numbers():
    """Lesson 06's 'What the row says' quotes the Table 6 run's log: each number there must be the
    log's (final error and its gap to the paper, the standard error, the range at LR 0.001, the
    first drop, the peak at LR 0.01, the training errors of the last epoch and of the last row)."""
    import math
    import re
    from experiments import RESULTS, images_measured
    from tinyresnet.run.folder import read_log
    text = lesson06_text(lambda cell: cell.get("id") == "table6-what-the-row-says")
    run = RESULTS / "cpu-table6" / "resnet20"
    log, n_test = read_log(run), images_measured(run, "test_error")
    evals = [(int(i), t, lr) for i, t, lr in zip(log["iteration"], log["test_error"], log["lr"]) if t == t]
    final, paper = log["test_error"][-1], float(re.search(r"Table 6's ([\d.]+)%", text).group(1))
    at_lowest = [t for _, t, lr in evals if lr == min(log["lr"])]
    before = max((e for e in evals if e[0] <= 32000), key=lambda e: e[0])
    after = min((e for e in evals if e[0] > 32000), key=lambda e: e[0])
    p = final / 100
    quoted = {
        "final test error": f"ends at {final:.2f}% test error",
        "gap to the paper": f"{final - paper:.2f} points above",
        "standard error": f"standard error of {100 * math.sqrt(p * (1 - p) / n_test):.2f} points",
        "range at the lowest LR": f"between {min(at_lowest):.2f}% and {max(at_lowest):.2f}%",
        "count at the lowest LR": {12: "twelve"}.get(len(at_lowest), str(len(at_lowest))) + " evaluations",
        "before the first drop": f"from {before[1]:.2f}% at iteration {before[0]:,}",
        "after the first drop": f"to {after[1]:.2f}% at {after[0]:,}",
        "peak at LR 0.01": f"(to {max(t for _, t, lr in evals if lr == 0.01):.2f}%)",
        "last full epoch": f"training error {log['train_error'][-2]:.2f}% in its last full epoch",
        "last row": f"last row, {log['train_error'][-1]:.2f}%, counts only the "
                    f"{int(log['iteration'][-1] - log['iteration'][-2])} steps",
    }
    assert_quoted(quoted, text, "'What the row says' (the Table 6 run)")


def test_lesson06_reading_of_the_jpeg_runs_holds_the_logs_numbers():
    """Lesson 06's reading of the JPEG runs quotes what one more pass cost ResNet-20's final test
    error: on 10,000 images (seeds 0 and 1), with two passes (seed 0) and on all 50,000 images. Each
    cost must be the logs' difference, to two decimals."""
    from experiments import RESULTS, final_errors
    text = lesson06_text(lambda cell: cell.source.startswith("One more pass raised"))

    def cost(as_is, passed):
        return final_errors(RESULTS / passed / "resnet20")["test_error"] - \
            final_errors(RESULTS / as_is / "resnet20")["test_error"]
    quoted = {
        "one pass, seeds 0 and 1": f"by {cost('cpu-fig6-b16-30ep', 'cpu-jpeg-pass'):.2f} and "
                                   f"{cost('cpu-fig6-b16-30ep-seed1', 'cpu-jpeg-pass-seed1'):.2f} points",
        "two passes, seed 0": f"the test error {cost('cpu-fig6-b16-30ep', 'cpu-jpeg-pass2'):.2f} points above",
        "one pass, 50,000 images": f"one more pass cost {cost('cpu-50k-10ep', 'cpu-jpeg-pass-50k-10ep'):.2f} points",
    }
    assert_quoted(quoted, text, "reading of the JPEG runs")
