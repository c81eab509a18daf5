"""Exact resume: what a checkpoint keeps of a run, and how a fresh run takes it back.

A resumed run continues bit for bit as if it had never stopped. Every random number is drawn
on the host (initialization, shuffling, augmentation), so on the GPU too there is no device
random state to keep. The checkpoint holds the
weights and batch-norm statistics, SGD's momentum buffers and step count, the schedule's
state (warm-up over or not), the random generator's state at the start of the epoch, the
running sums and the log rows. Resume only says where to start: it puts the generator back
at the start of the epoch, and the loop (train.epoch_batches) draws that epoch's shuffle and
augmentation again up to the step reached, so it sees exactly the batches it would have.
"""
import dataclasses
import math
from pathlib import Path

from .. import models
from .budget import check_fits
from .checkpoint import CheckpointError, Stored, open_checkpoint, save_checkpoint, unreadable
from .folder import (CHECKPOINT, CONFIG, LOG, LOG_COLUMNS, RunFolderError, check_new, device_name, load_config,
                     make_config, now, write_json, write_log)
from ..models import network_name
from .recipe import EXPERIMENT, FIXED, LENGTH, WHERE, UsageError, command_line, spelled, with_added_later
from .console import plural, warn
from .state import Sums
from .stops import check_finite, check_weights


def open_run(recipe, typed):
    """(recipe, checkpoint) to start from: for --resume, the checkpoint in --out and the recipe
    it continues (the options not typed come from it); else (recipe, None), once it is sure
    that --out is new or empty (folder.check_new). Either way, the net must fit in memory
    (budget.check_fits).

    The checkpoint is read in two steps: first its small JSON document, which must describe a
    run that config.json agrees with, and arrays that fit the model it names; only then the
    arrays themselves."""
    path = Path(recipe.out) / CHECKPOINT
    if not recipe.resume:
        check_new(recipe.out)
        check_fits(recipe)
        return recipe, None
    with open_checkpoint(path) as stored:
        problem = _problem(stored.state)
        if problem:
            raise unreadable(path, problem)
        recipe = resumed_recipe(recipe, typed, stored.state, path)
        _check_config(recipe, path)
        check_fits(recipe)
        _check_arrays(stored.state, recipe, path)
        return recipe, stored.read()


def _problem(ckpt):
    """What is wrong with a checkpoint's training state (a crafted or damaged file that still
    unpacks), or None. Its arrays are checked against the model in _check_arrays, the
    optimizer's values as they are loaded (SGD.load_state_dict)."""
    if not isinstance(ckpt, dict):
        return "not a dict of training state"
    for key, kind in (("iteration", int), ("total", int), ("wall_time", float)):
        value = ckpt.get(key)
        if not (_number(value) and isinstance(value, kind if kind is int else (int, float)) and value >= 0):
            return f"its {key} is {_short(value)}"
    rows = ckpt.get("rows")
    if not (isinstance(rows, list) and all(isinstance(r, dict) and all(_number(r.get(k)) for k in LOG_COLUMNS)
                                           for r in rows)):
        return "its log rows are not rows of numbers"
    for key in ("epoch_sums", "window_sums"):
        sums = ckpt.get(key)
        if not (isinstance(sums, dict) and set(sums) == {"loss", "wrong", "images", "steps"}
                and _number(sums["loss"]) and math.isfinite(sums["loss"])
                and all(_number(sums[k]) and isinstance(sums[k], int) and sums[k] >= 0
                        for k in ("wrong", "images", "steps"))):
            return f"its {key} are not running sums"
    if not isinstance(ckpt.get("optimizer"), dict):
        return "it has no optimizer state"
    return None


def _check_config(recipe, path):
    """The checkpoint is what resumes: refuse it when config.json describes another run (a
    checkpoint copied in from another folder), before anything in the folder changes. A
    config.json that is missing or damaged is rebuilt later (_config_to_continue)."""
    try:
        config = load_config(recipe.out)
    except RunFolderError:
        return
    saved = config["args"] if config is not None else {}
    differ = [k for k in FIXED if k in saved and saved[k] != getattr(recipe, k)]
    if differ:
        described = network_name(saved.get("depth"), saved.get("residual", True), saved.get("shortcut", "A"))
        raise CheckpointError(
            f"{path} holds a {recipe.label} run ({spelled(recipe.as_dict(), differ)}), but "
            f"{Path(recipe.out) / CONFIG} describes {described} ({spelled(saved, differ)}); the checkpoint "
            f"is what resumes: put back this folder's own checkpoint, or move {CONFIG} away to "
            "resume the checkpoint (it is rebuilt from it)")


def _check_arrays(ckpt, recipe, path):
    """Every array of the checkpoint (still unread: its shape and dtype) is a weight, buffer or
    momentum buffer of the model the recipe builds, with its shape; anything else is refused."""
    model = models.cifar_resnet(recipe.depth, recipe.residual, recipe.shortcut)
    shapes = {name: tuple(v.shape) for name, v in model.named_parameters()}
    shapes.update((name, tuple(v.shape)) for name, v in model.named_buffers())
    params = [tuple(p.shape) for p in model.parameters()]
    saved = ckpt.get("model")
    if not isinstance(saved, dict) or saved.keys() != shapes.keys():
        names = set(saved) if isinstance(saved, dict) else set()
        missing, extra = sorted(shapes.keys() - names), sorted(names - shapes.keys())
        raise _misfit(path, recipe, f"its model lacks {', '.join(missing[:3]) or 'nothing'} and holds "
                                    f"{', '.join(extra[:3]) or 'nothing more'}")
    expected = {("model", name): shape for name, shape in shapes.items()}
    velocity = ckpt["optimizer"].get("velocity")
    if not isinstance(velocity, list) or len(velocity) != len(params):
        raise _misfit(path, recipe, f"its optimizer holds {len(velocity) if isinstance(velocity, list) else 'no'} "
                                    f"momentum buffers, for {len(params)} parameters")
    expected.update((("optimizer", "velocity", i), shape) for i, shape in enumerate(params))
    for where, stored in _arrays_in(ckpt):
        shape = expected.get(where)
        if shape is None:
            raise unreadable(path, f"it holds an array at {'.'.join(map(str, where))}, where none belongs")
        if stored.shape != shape or stored.dtype.kind != "f":
            raise _misfit(path, recipe, f"its {'.'.join(map(str, where))} is an {stored!r}, the model's is {shape}")
    if any(not isinstance(v, Stored) for v in saved.values()):
        raise unreadable(path, "its model holds values that are not arrays")


def _misfit(path, recipe, what):
    return CheckpointError(f"{path} does not fit {recipe.label} ({what})")


def _arrays_in(obj, where=()):
    """(where, Stored) for every array in the unread state: where is the path of keys and indices."""
    if isinstance(obj, Stored):
        yield where, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _arrays_in(v, where + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _arrays_in(v, where + (i,))


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def resumed_recipe(recipe, typed, ckpt, path):
    """--resume: options not typed come from the checkpoint; typed fixed options must match it."""
    saved = with_added_later(ckpt.get("args") if isinstance(ckpt, dict) else None)
    if not isinstance(saved, dict) or not all(k in saved for k in EXPERIMENT):
        raise CheckpointError(f"{path}: has no record of its options; cannot resume it")
    taken = {k: saved[k] for k in FIXED + WHERE if k not in typed and k in saved}
    if not typed & set(LENGTH):
        taken.update({k: saved[k] for k in LENGTH})
    try:
        recipe = dataclasses.replace(recipe, **taken)
    except UsageError as e:  # the typed options were checked already: the saved ones are bad
        raise unreadable(path, f"its options: {e}") from None
    changed = [k for k in FIXED if getattr(recipe, k) != saved[k]]
    if changed:
        raise CheckpointError(f"{path} was trained with {spelled(saved, changed)}, not "
                              f"{spelled(recipe.as_dict(), changed)}; resume with the same options "
                              "or start a new run in another --out")
    return recipe


def begin(state, ckpt, argv):
    """Prepare --out: a new run gets an empty log.csv and its config.json; a resumed one takes the
    checkpoint's state, cuts log.csv back to it and notes the session in config.json (with the
    new schedule, if the length changed)."""
    out = state.out
    if ckpt is None:
        if state.writes:
            write_log(out / LOG, [])
            write_json(out / CONFIG, make_config(state, argv))
        return
    restore(state, ckpt)
    if state.iteration > state.total:
        raise UsageError(f"the checkpoint is at iteration {state.iteration}, past the "
                         f"{plural(state.total, 'iteration')} asked for")
    if not state.writes:  # a data-parallel rank other than 0: rank 0 writes the folder
        return
    write_log(out / LOG, state.rows)  # drop rows logged after the checkpoint
    config = _config_to_continue(state, argv)
    session = {"command": state.team.launcher() + command_line(argv), "iteration": state.iteration,
               "device": state.device, "device_name": device_name(state.device), "time": now()}
    if state.total != ckpt["total"]:
        warn(_new_length(state, ckpt["total"]))
        config["args"].update({k: getattr(state.recipe, k) for k in LENGTH})
        session["total_iterations"] = config["total_iterations"] = state.total
        session["schedule"] = config["schedule"] = str(state.opt.schedule)
    config.setdefault("resumed", []).append(session)
    write_json(out / CONFIG, config)


def _config_to_continue(state, argv):
    """The run's config.json, or, if it is missing or damaged, one rebuilt from the state (with a
    warning): the checkpoint holds all a run needs, config.json only describes it."""
    try:
        config = load_config(state.out)
        problem = None if config is not None else f"{state.out / CONFIG} is missing"
    except RunFolderError as e:
        config, problem = None, str(e)
    if config is None:
        warn(f"{problem}; rebuilt it from the checkpoint (its first command and start time are lost)")
        config = {**make_config(state, argv), "rebuilt": now()}
    return config


def _new_length(state, old_total):
    """The warning for a run resumed with another length: its LR schedule is re-planned."""
    text = (f"the run now has {plural(state.total, 'iteration')} instead of {old_total}; its LR schedule is "
            f"re-planned for the new length: {state.opt.schedule}")
    last, coming = state.opt.lr, state.opt.schedule(state.iteration)
    if coming > last:
        text += f"; at iteration {state.iteration} the LR goes back up from {last:g} to {coming:g}"
    return text


def save(state):
    """Checkpoint everything that changes during training; never a diverged state."""
    if state.epoch_sums.steps:
        check_finite(state, state.epoch_sums.read()[0], "training loss")
    model = state.model.state_dict()  # host copies: checked here, without a wait per parameter
    check_weights(state, model)
    if state.writes:  # every rank checks; rank 0 alone writes
        _write(state, model)
    state.saved_iteration = state.iteration


def _write(state, model):
    save_checkpoint(state.out / CHECKPOINT, {
        "args": state.recipe.as_dict(),
        "total": state.total,
        "iteration": state.iteration,
        "epoch": state.iteration / state.batches_per_epoch,  # for the reader; iteration is what counts
        "model": model,                             # weights and batch-norm running statistics
        "optimizer": state.opt.state_dict(),        # momentum buffers, step count, schedule (warm-up)
        "epoch_rng": state.epoch_rng,               # rng state at the start of the current epoch
        "epoch_sums": state.epoch_sums.state_dict(),
        "window_sums": state.window_sums.state_dict(),
        "rows": state.rows,
        "wall_time": state.wall_time(),
    })


def restore(state, ckpt):
    """Put a checkpoint's values into a freshly built state."""
    try:
        state.model.load_state_dict(ckpt["model"])
        state.opt.load_state_dict(ckpt["optimizer"])
        if state.opt.steps != ckpt["iteration"]:
            raise unreadable(state.out / CHECKPOINT, f"its optimizer took {state.opt.steps!r} steps, "
                                                     f"not {ckpt['iteration']}")
        state.rng.bit_generator.state = ckpt["epoch_rng"]
        state.saved_iteration = state.checked = state.first_iteration = state.iteration
        state.epoch_rng = ckpt["epoch_rng"]
        state.epoch_sums = Sums(**ckpt["epoch_sums"])
        state.window_sums = Sums(**ckpt["window_sums"])
        state.rows = ckpt["rows"]
        state.wall_time_before = float(ckpt["wall_time"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{state.out / CHECKPOINT} does not fit this run "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None

