"""Training curves in the layout of the paper's Fig. 6.

    python -m tinyresnet.plot runs/plain20 runs/plain56 -o plain.png
    python -m tinyresnet.plot runs/resnet20 runs/resnet56 runs/resnet110 -o resnets.png

Each run is one colour: its training error dashed, its test error bold, in
percent, against iterations (in units of 1e4, as in the paper, once a run is
that long). The legend names runs as the paper does (plain-20, ResNet-56),
from each run's config.json. Reading the runs is tinyresnet.run.folder's job;
this module only draws.

In Python (a notebook): `fig = plot_runs(["runs/resnet20", "runs/plain20"])`.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from .run.folder import RunFolderError, label_of, read_config, read_log

LONG_RUN = 10_000  # iterations from which the x axis counts in units of 1e4
FEW_POINTS = 30    # runs with fewer log rows get a dot at each row


class PlotError(Exception):
    """Runs that cannot be plotted together, explained in one line."""


def default_ylim(logs):
    """The paper's (0, 20) for long runs that end below 20 % error; else 0 to a bit above the
    highest error, so that a long run that ends higher (a CPU budget run) is not drawn off the axes.
    logs: read_log() of every run on the axes (on both panels of a figure that shares them)."""
    rows = [log for log in logs if len(log["iteration"])]
    if is_long(rows) and max(final_error(log) for log in rows) <= 20:
        return (0, 20)
    highest = max((np.nanmax(np.concatenate([log["train_error"], log["test_error"]])) for log in rows), default=100)
    return (0, min(100, 1.05 * highest))


def is_long(logs):
    """Whether any of the runs reaches LONG_RUN iterations (its x axis then counts in 1e4)."""
    return any(len(log["iteration"]) and log["iteration"].max() >= LONG_RUN for log in logs)


def final_error(log):
    """The larger of a log's last training error and its last measured test error (%)."""
    tested = log["test_error"][np.isfinite(log["test_error"])]
    return max(log["train_error"][-1], tested[-1] if len(tested) else 0.0)


def plot_runs(run_dirs, ax=None, labels=None, title=None, ylim=None):
    """Fig. 6 for some runs: training error dashed, test error bold, one colour per run.

    run_dirs: folders written by tinyresnet.train (or their log.csv files).
    ax: a matplotlib Axes to draw into (default: a new figure).
    labels: legend names (default: from each run's config.json).
    ylim: (low, high) error range in percent (default: see default_ylim).
    Returns the matplotlib Figure.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MultipleLocator

    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise PlotError("no run folders to plot")
    logs = [read_log(d) for d in run_dirs]
    labels = list(labels) if labels is not None else [label_of(d) for d in run_dirs]
    if len(labels) != len(run_dirs):
        raise PlotError(f"{len(labels)} labels for {len(run_dirs)} runs")
    if ax is None:
        fig = Figure(figsize=(6, 4.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    scale = 1e4 if is_long(logs) else 1
    handles = []
    for i, (log, label) in enumerate(zip(logs, labels)):
        color = f"C{i % 10}"
        x = log["iteration"] / scale
        dots = {"marker": "o", "markersize": 3} if len(x) < FEW_POINTS else {}  # short runs: show the rows
        ax.plot(x, log["train_error"], color=color, linestyle="--", linewidth=1, **dots)
        measured = np.isfinite(log["test_error"])  # --eval-every: a line through the epochs measured
        ax.plot(x[measured], log["test_error"][measured], color=color, linestyle="-", linewidth=2.5, **dots)
        handles.append(Line2D([], [], color=color, linewidth=2.5, label=label))
    sets = {read_config(d).get("test_set", "test") for d in run_dirs}
    test_name = "validation" if sets == {"val"} else "test"
    handles += [Line2D([], [], color="0.3", linestyle="--", linewidth=1, label="training error"),
                Line2D([], [], color="0.3", linestyle="-", linewidth=2.5, label=f"{test_name} error")]
    ax.legend(handles=handles, loc="best", fontsize="small")
    ax.set_xlabel("iter. (1e4)" if scale == 1e4 else "iterations")
    ax.set_ylabel("error (%)")
    if ylim is None:
        ylim = default_ylim(logs)
    ax.set_ylim(*ylim)
    if ylim[1] - ylim[0] <= 30:
        ax.yaxis.set_major_locator(MultipleLocator(5))  # 0, 5, 10, 15, 20 as in the paper
    ax.set_xlim(left=0)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    if title:
        ax.set_title(title)
    return fig


def main(argv=None):
    """python -m tinyresnet.plot RUN_DIR ... -o fig.png"""
    import matplotlib
    matplotlib.use("Agg")  # files only: no window, no display needed
    parser = argparse.ArgumentParser(prog="python -m tinyresnet.plot",
                                     description="Plot training and test error of runs as in Fig. 6 of the paper.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by tinyresnet.train")
    parser.add_argument("-o", "--output", default="errors.png", help="image file to write (default errors.png)")
    parser.add_argument("--labels", nargs="+", help="legend names, one per run (default from config.json)")
    parser.add_argument("--title")
    parser.add_argument("--ymax", type=float, help="top of the error axis, in percent")
    args = parser.parse_args(argv)
    try:
        fig = plot_runs(args.runs, labels=args.labels, title=args.title,
                        ylim=(0, args.ymax) if args.ymax else None)
        fig.savefig(args.output, dpi=150)
    except (PlotError, RunFolderError, OSError, ValueError) as e:
        print(f"tinyresnet.plot: error: {e}", file=sys.stderr)
        raise SystemExit(2)
    print(f"wrote {args.output}")
    return args.output


if __name__ == "__main__":
    main()
