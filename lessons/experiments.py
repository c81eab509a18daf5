"""Run bookkeeping for lessons 06 and 07: train a net once, reuse its logs afterwards.

    from experiments import RESULTS, train_or_reuse
    folder = train_or_reuse("plain20", depth=20, residual=False, subset=5000, epochs=5, test_subset=1000)

`train_or_reuse` looks into folder/name (default lessons/results/cpu-budget/<name>). When that
folder holds a *finished* run with the same recipe, nothing is trained: the run is reused and
the function says so. Otherwise it trains with `tinyresnet.train.run` (or resumes a stopped run
of the same recipe from its checkpoint). The recipe is what tinyresnet.run.recipe.EXPERIMENT
lists (depth, plain/residual, shortcut, batch size, lr, momentum, weight decay, warm-up, subset,
test subset, validation split, seed, and the length: epochs or iterations); the device, the
data folder and the output folder are not part of it.

The rest are small readers and figures used by the notebooks: final errors from a log, how far
a run that may still be training has come (so_far), where a run came from, the paper's Fig. 6
layout (plain nets left, ResNets right), lesson 06's figure (each plain net beside the ResNet of its depth, then the last epochs of every seed), its
verdict on two final errors (their gap, its binomial standard error, and whether it exceeds
ESTABLISHED_AT of them: the reference for the lesson's exercise), and the test images normalized
exactly as a run's training normalized them.

Trained weights ship with the lessons, so that lessons 07 and 08 mean something in a fresh
clone without hours of training: lessons/weights/<name>.npz for the four nets of NETS.

    from experiments import trained_model, weights_info
    model = trained_model("resnet56")          # float32, in eval mode, ready to measure
    weights_info("resnet56")["run"]            # the run they come from: command, iterations, errors

`export_weights(run_dir)` (or `python lessons/export_weights.py RUN_DIR ...`) writes such a file
from a finished run folder's checkpoint.npz: the model's parameters and batch-norm statistics
in float16 (half the bytes; what that changes is measured at export and stored in the file),
plus where they came from. The files use tinyresnet's checkpoint format: an .npz read with
allow_pickle=False, so loading one can never run code.
"""
import re
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from tinyresnet.data import load_cifar10, normalize, per_pixel_mean, subset
from tinyresnet.models import cifar_resnet
from tinyresnet.plot import default_ylim, plot_runs
from tinyresnet.run.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinyresnet.run.folder import CHECKPOINT, CONFIG, LOG, RunFolderError, label_of, read_config, read_log
from tinyresnet.run.recipe import EXPERIMENT, Recipe, with_added_later
from tinyresnet.run.report import duration
from tinyresnet.train import DATA_SEED, run

LESSONS = Path(__file__).resolve().parent
RESULTS = LESSONS / "results"
WEIGHTS = LESSONS / "weights"       # trained weights shipped with the lessons: <name>.npz
# every schedule the PyTorch twin was trained on (benchmarks/fig6_search.py), one JSON line per run
TWIN_SEARCH = LESSONS.parent / "benchmarks" / "results" / "fig6_search.jsonl"
RUN_FILES = (CHECKPOINT, LOG, CONFIG)

# The four nets of the paper's Fig. 6 that a CPU can train: name -> (depth, residual)
NETS = {"plain20": (20, False), "plain56": (56, False), "resnet20": (20, True), "resnet56": (56, True)}
# The CPU-budget recipe of lesson 06 (the paper's recipe, on 5k images for 5 epochs)
CPU_BUDGET = dict(subset=5000, epochs=5, test_subset=1000, seed=0)
# an unfinished run written to more recently than this may still be in training elsewhere
BUSY_SECONDS = 15 * 60


def recipe(options):
    """The options of tinyresnet.train.run() that define an experiment, with the defaults a run
    fills in (so a recipe here is exactly what a run would record)."""
    return Recipe(**options).resolved().experiment()


def saved_recipe(run_dir):
    """The recipe a run folder was trained with (from its config.json), or None."""
    args = read_config(run_dir).get("args")
    args = with_added_later(args)
    if not isinstance(args, dict) or not all(k in args for k in EXPERIMENT):
        return None
    return {k: args[k] for k in EXPERIMENT}


def progress(run_dir):
    """(last logged iteration, total iterations) of a run folder; (0, None) when unknown."""
    total = read_config(run_dir).get("total_iterations")
    try:
        log = read_log(run_dir)
    except RunFolderError:
        return 0, total
    done = int(log["iteration"][-1]) if len(log["iteration"]) else 0
    return done, total


def is_finished(run_dir):
    done, total = progress(run_dir)
    return total is not None and done >= total


def so_far(run_dir):
    """How far a run has come, from its log as it stands (it may still be training): {"iteration",
    "total", "epoch", "train_error", "finished", "test_error", "test_iteration", "best_test_error",
    "best_test_iteration", "wall_time"}, errors in percent, test_error the last one measured and
    test_iteration where, best_test_error the lowest one measured and where (all four None before the
    first), wall_time the seconds since the run began, summed over its stretches, evaluations and
    checkpoints included; None when there is no row to read (no folder, no log, only its header, or a
    row being written)."""
    try:
        log = read_log(run_dir)
    except RunFolderError:
        return None
    if not len(log["iteration"]):
        return None
    done, total = int(log["iteration"][-1]), read_config(run_dir).get("total_iterations")
    measured = np.flatnonzero(np.isfinite(log["test_error"]))
    last = measured[-1] if len(measured) else None
    best = measured[np.argmin(log["test_error"][measured])] if len(measured) else None
    return {"iteration": done, "total": total, "epoch": int(log["epoch"][-1]) if "epoch" in log else None,
            "train_error": float(log["train_error"][-1]), "finished": total is not None and done >= total,
            "test_error": None if last is None else float(log["test_error"][last]),
            "test_iteration": None if last is None else int(log["iteration"][last]),
            "best_test_error": None if best is None else float(log["test_error"][best]),
            "best_test_iteration": None if best is None else int(log["iteration"][best]),
            "wall_time": float(log["wall_time"][-1])}


def _differences(wanted, saved):
    return ", ".join(f"{k} {saved[k]!r} there, {wanted[k]!r} asked" for k in wanted if wanted[k] != saved[k])


def train_or_reuse(name, folder=RESULTS / "cpu-budget", force=False, require_checkpoint=False, **options):
    """folder/name after making sure it holds a finished run of `options` (run()'s keywords).

    * a finished run with the same recipe is reused: nothing is trained;
    * a stopped run with the same recipe (checkpoint, log not at its end) is resumed, unless
      its files changed in the last 15 minutes (another process may be training it: an error
      says so; pass resume=True if you know it is stopped);
    * an empty or missing folder gets a new run;
    * a folder holding a run with another recipe is an error, never overwritten silently.
    force=True deletes the folder's log.csv, config.json and checkpoint.npz first and trains
    again. require_checkpoint=True (for the weights of your own runs) retrains a finished run whose
    checkpoint.npz is missing, as in a fresh clone where only logs are committed.
    Returns the run folder (a Path).
    """
    run_dir = Path(folder) / name
    options = {**options, "out": str(run_dir)}
    wanted = recipe(options)
    if force:
        for f in RUN_FILES:
            (run_dir / f).unlink(missing_ok=True)
        print(f"{name}: force=True, deleted the old run files in {run_dir}")
    saved = saved_recipe(run_dir)
    has_checkpoint = (run_dir / CHECKPOINT).is_file()
    if saved is not None and saved != wanted:
        raise ValueError(f"{run_dir} holds a run with another recipe ({_differences(wanted, saved)}); "
                         "pass force=True to replace it, or another folder")
    if saved is not None and is_finished(run_dir) and (has_checkpoint or not require_checkpoint):
        done, _ = progress(run_dir)
        log = read_log(run_dir)
        print(f"{name}: reusing the finished run in {_short(run_dir)} ({done} iterations, "
              f"trained in {duration(log['wall_time'][-1])}); force=True trains it again")
        return run_dir
    if saved is not None and has_checkpoint and not is_finished(run_dir):
        done, total = progress(run_dir)
        age = time.time() - max((run_dir / f).stat().st_mtime for f in RUN_FILES if (run_dir / f).exists())
        if age < BUSY_SECONDS and not options.get("resume"):
            raise RuntimeError(
                f"{run_dir} holds an unfinished run ({done} of {total} iterations) that was written to "
                f"{age:.0f} s ago: another process may still be training it. Wait until it is finished "
                "and run this again; if nothing else is training it (you stopped it yourself), pass "
                "resume=True to continue it")
        print(f"{name}: resuming the stopped run in {_short(run_dir)} at iteration {done} of {total}")
        options["resume"] = True
    elif saved is not None and not has_checkpoint and is_finished(run_dir):
        print(f"{name}: {_short(run_dir)} holds the log of a finished run but no checkpoint.npz "
              "(weights are not committed); training it again for its weights")
    else:
        print(f"{name}: training into {_short(run_dir)}")
    run(**options)   # not quiet: a progress bar per epoch and a line per epoch (quiet=True turns them off)
    return run_dir


def _short(path):
    path = Path(path).resolve()
    try:
        return str(path.relative_to(LESSONS))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------ reading runs

def _relative(command, roots=()):
    """A recorded command line with this checkout's absolute paths (and those of the checkouts
    `roots` that trained it) made relative to its root: some runs were started with absolute
    --data-dir and --out."""
    for root in (LESSONS.parent, *roots):
        command = command.replace(str(root).rstrip("/") + "/", "")
    return command


def _trained_in(run):
    """The root of the checkout a weights file's run was trained in: its --out minus the run
    folder's path inside the repository (run["source"]); () where that does not fit."""
    out, source = str(run.get("args", {}).get("out") or ""), str(run.get("source") or "")
    return (out[:-len(source)],) if source and out.endswith("/" + source) else ()


def final_errors(run_dir):
    """Last logged row of a run: {"iteration", "train_error", "test_error", "wall_time"} (errors in %)."""
    log = read_log(run_dir)
    return {k: float(log[k][-1]) for k in ("iteration", "train_error", "test_error", "wall_time")}


def describe(run_dir):
    """Where a run came from, in a few lines: command, device, versions, length, wall time."""
    config = read_config(run_dir)
    done, total = progress(run_dir)
    lines = [f"{config.get('label', Path(run_dir).name)}  ({_short(run_dir)})",
             f"  command : {_relative(config.get('command', '?'))}",
             f"  device  : {config.get('device', '?')} ({config.get('device_name', '?')}); "
             f"versions {config.get('versions', {})}",
             f"  data    : {config.get('train_images', '?')} training images, "
             f"{config.get('test_set', '?')}; schedule {config.get('schedule', '?')}",
             f"  started : {config.get('started', '?')}"]
    try:
        wall = read_log(run_dir)["wall_time"]
        length = f"{done} of {total} iterations" + ("" if done == total else "  (NOT FINISHED)")
        lines.append(f"  length  : {length}; wall time {duration(wall[-1]) if len(wall) else '?'}")
    except RunFolderError:
        lines.append("  length  : no log rows yet")
    for resumed in config.get("resumed", []):
        machine = f" on {resumed['device_name']}" if "device_name" in resumed else ""
        lines.append(f"  resumed : at iteration {resumed.get('iteration')}{machine} with "
                     f"{_relative(resumed.get('command', '?'))}")
    return "\n".join(lines)


def figure6(left, right, titles=("plain networks", "residual networks"), ylim=None):
    """The paper's Fig. 6 layout: two panels side by side, training error dashed, test error bold."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
    if ylim is None:  # one error axis for both panels, as in the paper, that fits every run
        ylim = default_ylim([read_log(run) for run in (*left, *right)])
    for ax, runs, title in zip(axes, (left, right), titles):
        plot_runs(runs, ax=ax, title=title, ylim=ylim)
    return fig



PLAIN_COLOR = "0.55"                 # degradation_figure: the plain nets grey, the ResNets in colour
SEED_STYLES = ("-", "--", ":", "-.")  # one line style per seed in the zoomed panels


def degradation_figure(runs, seeds=None, zoom_from=20, title=None):
    """The degradation at a glance, from the logs of four runs of one recipe (and more seeds).

    runs: {"plain20", "plain56", "resnet20", "resnet56"} -> run folder. The top row puts each plain
        net beside the ResNet of the same depth, on one error axis: training error dashed, test
        error bold, as in the paper's Fig. 6; epochs on x, the learning-rate drops dotted.
    seeds: optionally {seed: {"resnet20": folder, "resnet56": folder}}, the deciding pair trained
        with several seeds: a bottom row zooms into the epochs from `zoom_from` on, training error
        left and test error right, one line style per seed.
    Returns the matplotlib Figure."""
    rows = 2 if seeds else 1
    fig, axes = plt.subplots(rows, 2, figsize=(11, 4.2 * rows), squeeze=False, layout="constrained")
    logs = {name: read_log(folder) for name, folder in runs.items()}
    top = 1.05 * max(np.nanmax(np.concatenate([log["train_error"], log["test_error"]])) for log in logs.values())
    for ax, depth in zip(axes[0], (20, 56)):
        for name in (f"plain{depth}", f"resnet{depth}"):
            _draw_errors(ax, logs[name], _color(name), label_of(runs[name]))
        _lr_drops(ax, runs[f"resnet{depth}"])
        ax.set(title=f"{depth} layers: plain against residual", xlabel="epoch", ylabel="error (%)",
               ylim=(0, min(100, top)), xlim=(0, None))
        ax.legend(handles=ax.get_legend_handles_labels()[0] + _style_handles(), fontsize="small")
    if seeds:
        for ax, column in zip(axes[1], ("train_error", "test_error")):
            for (seed, pair), style in zip(sorted(seeds.items()), SEED_STYLES):
                for name in ("resnet20", "resnet56"):
                    log = read_log(pair[name])
                    keep = (log["epoch"] >= zoom_from) & np.isfinite(log[column])
                    ax.plot(log["epoch"][keep], log[column][keep], color=_color(name), linestyle=style,
                            marker="o" if column == "test_error" else None, markersize=4,
                            linewidth=2 if column == "test_error" else 1.2,
                            label=f"{label_of(pair[name])}, seed {seed}")
            _scale_bar(ax, seeds[min(seeds)], column, zoom_from)
            what = "training error" if column == "train_error" else "test error"
            ax.set(title=f"the last epochs, {what}, every seed", xlabel="epoch", ylabel="error (%)")
            ax.legend(fontsize="small", ncol=2)
    for ax in axes.flat:
        ax.grid(True, linewidth=0.3, alpha=0.5)
    if title:
        fig.suptitle(title)
    return fig


def _color(name):
    return f"C{['resnet20', 'resnet56'].index(name)}" if NETS[name][1] else PLAIN_COLOR


def _draw_errors(ax, log, color, label, x=None):
    """One run on ax: training error dashed, test error bold (where it was measured), against
    x (default: the log's epochs)."""
    x = log["epoch"] if x is None else x
    tested = np.isfinite(log["test_error"])
    dots = {"marker": "o", "markersize": 3} if len(x) < 10 else {}
    ax.plot(x, log["train_error"], color=color, linestyle="--", linewidth=1, **dots)
    ax.plot(x[tested], log["test_error"][tested], color=color, linewidth=2.5, label=label, **dots)


def _lr_drops(ax, run_dir, per=None):
    """Dotted vertical lines where the run's learning rate was divided by 10, at x = iteration / per
    (default: per epoch's batches, so x is in epochs)."""
    config = read_config(run_dir)
    per = per or config["batches_per_epoch"]
    drops = re.search(r"/10 at iterations (\d+) and (\d+)", config.get("schedule", ""))
    for iteration in (drops.groups() if drops else ()):
        ax.axvline(int(iteration) / per, color="0.6", linestyle=":", linewidth=1)


def _scale_bar(ax, pair, column, x):
    """A vertical bar at epoch x as long as ESTABLISHED_AT standard errors of the pair's final gap:
    how far apart two final errors must be before the lesson calls their ordering established."""
    errors = [final_errors(pair[name])[column] for name in ("resnet20", "resnet56")]
    _, se = gap_and_standard_error(*errors, images_measured(pair["resnet20"], column))
    low = min(errors) - ESTABLISHED_AT * se / 2
    ax.errorbar([x + 0.2], [low + ESTABLISHED_AT * se / 2], yerr=ESTABLISHED_AT * se / 2, color="k",
                capsize=4, linewidth=1.5, label=f"{ESTABLISHED_AT} standard errors of a gap")


def _style_handles():
    from matplotlib.lines import Line2D
    return [Line2D([], [], color="0.3", linestyle="--", linewidth=1, label="training error"),
            Line2D([], [], color="0.3", linewidth=2.5, label="test error"),
            Line2D([], [], color="0.6", linestyle=":", linewidth=1, label="LR / 10")]


def table6_figure(run_dir, paper_error, ylim=(0, 20)):
    """One run against its row of the paper's Table 6, drawn like one curve of Fig. 6: training
    error dashed, test error bold, iterations (x 10^4) on x, the error axis cut at 20% as the
    paper's is, the learning-rate drops dotted and the paper's final test error as a thin line.
    A run still training shows the iterations it has reached; the x axis spans its whole length.
    Returns the matplotlib Figure."""
    log, config = read_log(run_dir), read_config(run_dir)
    fig, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
    _draw_errors(ax, log, "C0", label_of(run_dir), x=log["iteration"] / 1e4)
    ax.axhline(paper_error, color="k", linewidth=0.8, label=f"the paper's final test error, {paper_error}%")
    _lr_drops(ax, run_dir, per=1e4)
    total = config.get("total_iterations") or int(log["iteration"][-1])
    ax.set(xlabel="iteration (x 10^4)", ylabel="error (%)", xlim=(0, total / 1e4), ylim=ylim,
           title=f"{label_of(run_dir)}: the paper's schedule, {int(log['iteration'][-1]):,} of {total:,} iterations")
    ax.legend(handles=ax.get_legend_handles_labels()[0] + _style_handles(), fontsize="small")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    return fig


def net_color(name):
    """The colour of net `name` in lesson 06's figures, for the lessons that plot the same nets:
    figure6 puts the plain nets left and the ResNets right, each panel in NETS order, and
    plot_runs colours a panel's i-th run C{i}: the 20-layer nets C0, the 56-layer nets C1."""
    residual = NETS[name][1]
    return f"C{[n for n, (_, r) in NETS.items() if r == residual].index(name)}"

# ------------------------------------------------------------------ inputs for lesson 07

def test_images(count, run_dir=None, data_dir=None, subset_size=None):
    """The first `count` test images (float32, normalized) and labels, normalized with the
    per-pixel mean of the training images a net was trained on, exactly as its evaluation did:
    those of run_dir (its --subset), or the first `subset_size` of the fixed random order
    (weights_info(name)["run"]["args"]["subset"]). Without either: all 50k training images."""
    return _images(count, "test", run_dir, data_dir, subset_size)


def training_images(count, run_dir=None, data_dir=None, subset_size=None):
    """The first `count` of the training images a net was trained on (its --subset, in the fixed
    random order), normalized as in its training; the arguments as for test_images."""
    return _images(count, "training", run_dir, data_dir, subset_size)


def _images(count, split, run_dir, data_dir, subset_size):
    x_train, y_train, x_test, y_test = load_cifar10(data_dir)
    n = read_config(run_dir).get("args", {}).get("subset") if run_dir is not None else subset_size
    if n:
        x_train, y_train = subset(x_train, y_train, n, seed=DATA_SEED)
    x, y = (x_test, y_test) if split == "test" else (x_train, y_train)
    return normalize(x[:count], per_pixel_mean(x_train)), y[:count]


def response_layers(model):
    """The 6n+1 modules whose outputs are a CifarResNet's layer responses, in network order: the
    batch norm after each 3x3 convolution (model.bn, then bn1 and bn2 of every block), or the
    Identity in its place in a net without batch norm."""
    return [model.bn] + [norm for block in model.blocks for norm in (block.bn1, block.bn2)]


def layer_responses(model, x, measure=np.std):
    """measure(r) of each 3x3 layer's response r (after BN, before ReLU or addition; an array
    (N, C, H, W)) on images x (N, 3, 32, 32): 6n+1 values in network order, with the model in
    the mode it is in. A forward hook on each of response_layers(model) measures its output as
    it passes, so no response is kept; the hooks come off again afterwards."""
    from tinyresnet import Tensor, no_grad
    measured = []
    handles = [layer.register_forward_hook(lambda module, inputs, output: measured.append(measure(output.numpy())))
               for layer in response_layers(model)]
    try:
        with no_grad():
            model(Tensor(x))
    finally:
        for handle in handles:
            handle.remove()
    return measured


def response_stds(model, x):
    """The std of each 3x3 layer's response on images x, over all its values, in eval mode:
    the quantity of the paper's Fig. 7 (lesson 07 has you write it). Leaves the model in eval mode."""
    model.eval()
    return [float(s) for s in layer_responses(model, x)]


# ------------------------------------------------------------------ trained weights (lessons 07, 08)

WEIGHTS_FORMAT = "tinyresnet-weights-1"
STORED_DTYPE = np.float16


class WeightsError(Exception):
    """A weights file that is missing or is not one export_weights wrote; explained in one line."""


def trained_model(name, folder=WEIGHTS):
    """The trained net `name` ("plain20", "plain56", "resnet20", "resnet56") from folder/<name>.npz,
    as a float32 CifarResNet in eval mode. folder may also be a run folder's parent (for example
    RESULTS / "cpu-budget"): then the weights come from folder/<name>/checkpoint.npz."""
    info = weights_info(name, folder)
    depth, residual, shortcut = (info["model"][k] for k in ("depth", "residual", "shortcut"))
    model = cifar_resnet(depth, residual, shortcut)
    model.load_state_dict(info["state"])        # cast to the model's float32
    model.eval()
    return model


def weights_info(name, folder=WEIGHTS):
    """What a weights file holds: {"model": {depth, residual, shortcut}, "state": the state dict,
    "run": where the weights come from (command, args, iteration, total, errors, wall time,
    device), "float16": what storing them in float16 changed (measured at export)}."""
    folder = Path(folder)
    if (folder / name / CHECKPOINT).is_file():  # a run folder: its checkpoint, as trained
        return _info_from_run(folder / name)
    path = folder / f"{name}.npz"
    if not path.is_file():
        raise WeightsError(f"{path}: no weights file there; lessons/weights/ holds "
                           f"{', '.join(sorted(p.stem for p in WEIGHTS.glob('*.npz'))) or 'none'}, and "
                           "export_weights(run_dir) writes one from a finished run")
    try:
        info = load_checkpoint(path)
    except CheckpointError as e:
        raise WeightsError(str(e)) from None
    if info.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: not a weights file of export_weights (format {info.get('format')!r})")
    return info


def _info_from_run(run_dir):
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT)
    config = read_config(run_dir)
    args = config.get("args", {})
    log = read_log(run_dir)
    source = Path(run_dir).resolve()
    source = source.relative_to(LESSONS.parent) if source.is_relative_to(LESSONS.parent) else source
    return {"format": WEIGHTS_FORMAT, "name": Path(run_dir).name,
            "model": {"depth": args["depth"], "residual": args["residual"], "shortcut": args.get("shortcut", "A")},
            "state": ckpt["model"],
            "run": {"source": str(source), "command": config.get("command"), "args": args,
                    "iteration": int(ckpt["iteration"]), "total": int(ckpt["total"]),
                    "train_error": float(log["train_error"][-1]), "test_error": float(log["test_error"][-1]),
                    "test_set": config.get("test_set"), "wall_time": float(log["wall_time"][-1]),
                    "device_name": config.get("device_name"), "started": config.get("started")},
            "float16": None}


def export_weights(run_dir, name=None, folder=WEIGHTS, images=500, data_dir=None):
    """Write the trained model of a finished run folder as folder/<name>.npz (name: the folder's).

    The parameters and batch-norm statistics are stored in float16, which halves the file. What
    that changes is measured here, on the first `images` test images normalized as the run's
    evaluation did: the error, and the Fig. 7 response std of every layer, with the float32
    weights and with the float16 ones; the numbers are stored in the file ("float16").
    Returns (path, info)."""
    run_dir = Path(run_dir)
    if not is_finished(run_dir):
        done, total = progress(run_dir)
        raise WeightsError(f"{run_dir}: the run is not finished ({done} of {total} iterations); "
                           "export the weights of finished runs only")
    info = _info_from_run(run_dir)
    name = name or run_dir.name
    stored = {k: (v.astype(STORED_DTYPE) if v.dtype.kind == "f" else v) for k, v in info["state"].items()}
    x, y = test_images(images, run_dir, data_dir)
    measured = {}
    for dtype, state in (("float32", info["state"]), ("float16", stored)):
        model = cifar_resnet(**info["model"])
        model.load_state_dict(state)
        measured[dtype] = (predictions(model, x), np.array(response_stds(model, x)))
    (pred32, stds32), (pred16, stds16) = measured["float32"], measured["float16"]
    info = {**info, "name": name, "state": stored, "float16": {
        "images": len(x), "error_float32": 100 * float((pred32 != y).mean()),
        "error_float16": 100 * float((pred16 != y).mean()), "predictions_changed": int((pred32 != pred16).sum()),
        "largest_response_std_change": float(np.max(np.abs(stds16 / stds32 - 1)))}}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    save_checkpoint(path, info)
    return path, info


def predictions(model, x, batch=250):
    """The class model predicts (eval mode) for each of the normalized images x: (N,) ints."""
    from tinyresnet import Tensor, no_grad
    model.eval()
    with no_grad():
        return np.concatenate([model(Tensor(x[i:i + batch])).numpy().argmax(axis=1)
                               for i in range(0, len(x), batch)])


def describe_weights(name, folder=WEIGHTS):
    """Where the weights of `name` come from, and what float16 storage changed, in a few lines."""
    info = weights_info(name, folder)
    run, f16 = info["run"], info["float16"]
    path = Path(folder) / f"{name}.npz"
    size = f", {path.stat().st_size / 1e6:.2f} MB" if path.is_file() else ""
    lines = [f"{name}: the weights after {run['iteration']} of {run['total']} iterations of the run in "
             f"{run['source']}{size}",
             f"  command : {_relative(run['command'], _trained_in(run))}",
             f"  errors  : training {run['train_error']:.1f}%, {run['test_set']} {run['test_error']:.1f}% "
             f"(the run's last log row); trained in {duration(run['wall_time'])} on {run['device_name']}"]
    if f16:
        lines.append(f"  float16 : on {f16['images']} test images, error {f16['error_float32']:.1f}% with the "
                     f"float32 weights, {f16['error_float16']:.1f}% with the stored float16 ones "
                     f"({f16['predictions_changed']} predictions changed); the response stds change by at "
                     f"most {100 * f16['largest_response_std_change']:.2g}%")
    return "\n".join(lines)



def wall_times(run_dirs):
    """Each run's wall time (the last wall_time of its log.csv) and their sum, in one line."""
    times = {label_of(d): float(read_log(d)["wall_time"][-1]) for d in run_dirs}
    each = ", ".join(f"{name} {duration(t)}" for name, t in times.items())
    return (f"wall times: {each}; {duration(sum(times.values()))} in all, one after the other "
            "(runs that shared the machine took less from first start to last finish)")


# ------------------------------------------------------------------ the verdict (lesson 06)

ESTABLISHED_AT = 2   # standard errors of the gap: lesson 06's threshold for an established ordering


def gap_and_standard_error(err_a, err_b, n_images):
    """(err_a - err_b, its binomial standard error), in percentage points, for two error rates in
    percent each measured on n_images images: what lesson 06 uses until error_gap is written."""
    variance = sum(p / 100 * (1 - p / 100) / n_images for p in (err_a, err_b))
    return err_a - err_b, 100 * variance ** 0.5


def clearly_above(err_a, err_b, n_images):
    """Whether err_a is above err_b by more than ESTABLISHED_AT standard errors of the gap."""
    gap, standard_error = gap_and_standard_error(err_a, err_b, n_images)
    return bool(gap > ESTABLISHED_AT * standard_error)


def images_measured(run_dir, column):
    """How many images the final error in the log's `column` ("train_error", "test_error") of a run
    counts: the last epoch's minibatches (whole batches only), or the test images evaluated."""
    config = read_config(run_dir)
    if column == "train_error":
        return config["batches_per_epoch"] * config["args"]["batch_size"]
    return config["test_images"]


def twin_runs(search=TWIN_SEARCH, **match):
    """The PyTorch twin's runs in `search` (benchmarks/fig6_search.py's JSON lines) whose fields
    equal `match`, e.g. twin_runs(batch=16, iterations=12480); [] when the file is missing."""
    from benchmarks.fig6_search import read_rows   # the search's own reader (needs no PyTorch)
    return read_rows(search, **match)
