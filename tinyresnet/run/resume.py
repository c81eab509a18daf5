"""Exact resume: what a checkpoint keeps of a run, how a fresh run takes it back, and the replay.

A resumed run continues bit for bit as if it had never stopped. Every random number is drawn
on the host (initialization, shuffling, augmentation), so on the GPU too there is no device
random state to keep. The checkpoint holds the
weights and batch-norm statistics, SGD's momentum buffers and step count, the schedule's
state (warm-up over or not), the random generator's state at the start of the epoch, the
running sums and the log rows. An epoch resumed in the middle replays its shuffle and its
augmentation draws up to the step reached, so it sees exactly the batches it would have.
"""
import dataclasses
import json
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .folder import CHECKPOINT, CONFIG, LOG, make_config, now, write_json, write_log
from .recipe import EXPERIMENT, FIXED, LENGTH, WHERE, UsageError, command_line, spelled
from .state import Sums
from .stops import check_finite


def open_run(recipe, typed):
    """(recipe, checkpoint) to start from: for --resume, the checkpoint in --out and the recipe
    it continues (the options not typed come from it); else (recipe, None), once it is sure
    that --out holds no run to overwrite."""
    path = Path(recipe.out) / CHECKPOINT
    if not recipe.resume:
        if path.exists():
            raise UsageError(f"{recipe.out} already holds a run ({CHECKPOINT}); continue it with --resume, "
                             "or give another --out")
        return recipe, None
    ckpt = load_checkpoint(path)
    return resumed_recipe(recipe, typed, ckpt, path), ckpt


def resumed_recipe(recipe, typed, ckpt, path):
    """--resume: options not typed come from the checkpoint; typed fixed options must match it."""
    saved = ckpt.get("args") if isinstance(ckpt, dict) else None
    if not isinstance(saved, dict) or not all(k in saved for k in EXPERIMENT):
        raise CheckpointError(f"{path}: has no record of its options; cannot resume it")
    taken = {k: saved[k] for k in FIXED + WHERE if k not in typed and k in saved}
    if not typed & set(LENGTH):
        taken.update({k: saved[k] for k in LENGTH})
    recipe = dataclasses.replace(recipe, **taken)
    changed = [k for k in FIXED if getattr(recipe, k) != saved[k]]
    if changed:
        raise CheckpointError(f"{path} was trained with {spelled(saved, changed)}, not "
                              f"{spelled(recipe.as_dict(), changed)}; resume with the same options "
                              "or start a new run in another --out")
    return recipe


def begin(state, ckpt, argv):
    """Prepare --out: a new run gets an empty log.csv and its config.json; a resumed one takes the
    checkpoint's state, cuts log.csv back to it and notes the session in config.json."""
    out = state.out
    if ckpt is None:
        out.mkdir(parents=True, exist_ok=True)
        write_log(out / LOG, [])
        write_json(out / CONFIG, make_config(state, argv))
        return
    restore(state, ckpt)
    if state.iteration > state.total:
        raise UsageError(f"the checkpoint is at iteration {state.iteration}, past the "
                         f"{state.total} iterations asked for")
    if state.total != ckpt["total"] and not state.recipe.quiet:
        print(f"note: the run now has {state.total} iterations instead of {ckpt['total']}; "
              f"the LR schedule is now: {state.opt.schedule}")
    write_log(out / LOG, state.rows)  # drop rows logged after the checkpoint
    config = (json.loads((out / CONFIG).read_text()) if (out / CONFIG).is_file()
              else make_config(state, argv))
    config.setdefault("resumed", []).append({
        "command": command_line(argv), "iteration": state.iteration, "device": state.device,
        "time": now()})
    write_json(out / CONFIG, config)


def save(state):
    """Checkpoint everything that changes during training; never a diverged state."""
    if state.epoch_sums.steps:
        check_finite(state, state.epoch_sums.read()[0], "training loss")
    model = state.model.state_dict()  # host copies: checked here, without a wait per parameter
    if not all(np.isfinite(values).all() for values in model.values()):
        check_finite(state, float("nan"), "model's weights")
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
    state.saved_iteration = state.iteration


def restore(state, ckpt):
    """Put a checkpoint's values into a freshly built state."""
    try:
        state.model.load_state_dict(ckpt["model"])
        state.opt.load_state_dict(ckpt["optimizer"])
        if state.opt.steps != ckpt["iteration"]:
            raise ValueError(f"its optimizer took {state.opt.steps} steps, not {ckpt['iteration']}")
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


def replay_epoch(state):
    """The current epoch's batches, from the step reached on: the epoch's shuffle and the
    augmentation draws of the steps already taken are drawn again from epoch_rng."""
    state.rng.bit_generator.state = state.epoch_rng
    batches = iter(state.train_loader)  # draws this epoch's shuffle from rng
    for _ in range(state.iteration % state.batches_per_epoch):
        next(batches)
    return batches
