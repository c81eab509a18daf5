"""Train a CIFAR-10 ResNet, or its plain twin, with the recipe of He et al. 2016 (section 4.2).

    python -m tinyresnet.train --depth 56 --residual --device gpu
    python -m tinyresnet.train --depth 20 --plain --epochs 10 --subset 5000
    python -m tinyresnet.train --out runs/resnet56 --resume      # continue a stopped run

From Python: run(depth=56), or run(Recipe(depth=56)). The defaults are the paper's recipe
(run/recipe.py); the run folder (log.csv, config.json, checkpoint.npz) is run/folder.py's.

This module is the loop, top to bottom: build the model and the data, train a step, train an
epoch, evaluate and log, and the session that repeats them. The machinery around it (options,
run folder, checkpoint, exact resume, Ctrl-C and NaN stops, summary and exit codes) is the
package tinyresnet.run.

The loop never waits for the device inside a step: losses and mistakes are summed where they
are computed, and read to the host (which waits for the GPU) every READ_EVERY iterations and
at the end of each epoch.
"""
import dataclasses
import math
import time

import numpy as np
from tqdm import tqdm

from . import functional as F
from . import cpu, models, optim
from .autograd import Tensor, no_grad
from .data import Loader, load_cifar10, per_pixel_mean, split_train_val, subset
from .device import read_scalars, to_device, xp_for
from .nn import manual_seed, set_ghost_batch
from .run import folder, parallel, report, resume, stops
from .run.console import say
from .run.recipe import VAL_SIZE, Recipe, UsageError, flag, parse_command_line
from .run.state import State, Sums

READ_EVERY = 20      # iterations between reads of the running loss to the host (and NaN checks)
EVAL_BATCH = 500
SOLO = parallel.Solo()  # one process: no data parallelism
DATA_SEED = 0        # which images --val-split and --subset keep: the same for every --seed


def load_data(recipe):
    """x_train, y_train, x_test, y_test (uint8 images, int labels, on the host) and the test set's name."""
    x_train, y_train, x_test, y_test = load_cifar10(recipe.data_dir)
    test_set = "test"
    if recipe.val_split:
        if VAL_SIZE >= len(x_train):
            raise UsageError(f"--val-split holds out {VAL_SIZE} images, but the training set has only {len(x_train)}")
        x_train, y_train, x_test, y_test = split_train_val(x_train, y_train, VAL_SIZE, seed=DATA_SEED)
        test_set = "val"
    if recipe.subset is not None:
        check_subset("subset", recipe.subset, len(x_train), "training")
        x_train, y_train = subset(x_train, y_train, recipe.subset, seed=DATA_SEED)
    if recipe.test_subset is not None:
        check_subset("test_subset", recipe.test_subset, len(x_test), test_set)
        x_test, y_test = subset(x_test, y_test, recipe.test_subset, seed=DATA_SEED)
        test_set += f" ({recipe.test_subset} images)"
    return x_train, y_train, x_test, y_test, test_set


def check_subset(key, n, available, which):
    """UsageError, naming the option, when --subset or --test-subset asks for more images than there are."""
    if n > available:
        raise UsageError(f"{flag(key)} {n}: the {which} set has only {available} images; give at most {available}")


def build(recipe, team=SOLO):
    """The model on its device, SGD following the paper's schedule, and the data loaders: a fresh State.
    On N ranks (team), each evaluates its part of the test set."""
    xp_for(recipe.device)  # DeviceError now, before any data is loaded
    manual_seed(recipe.seed)
    model = models.cifar_resnet(recipe.depth, recipe.residual, recipe.shortcut).to(recipe.device)
    set_ghost_batch(model, recipe.bn_batch)  # None: batch norm over whole minibatches
    x_train, y_train, x_test, y_test, test_set = load_data(recipe)
    mean = per_pixel_mean(x_train)  # of the images actually trained on
    rng = np.random.default_rng((recipe.seed, 1))  # a stream of its own, apart from the weights' one
    train_loader = Loader(x_train, y_train, recipe.batch_size, mean, shuffle=True, augment=True, rng=rng)
    test_loader = Loader(*team.part(x_test, y_test), EVAL_BATCH, mean)
    total = recipe.total_iterations(len(train_loader))
    schedule = optim.paper_schedule(recipe.lr, total, recipe.warmup)
    opt = optim.SGD(model.parameters(), schedule, recipe.momentum, recipe.weight_decay)
    state = State(recipe, model, opt, train_loader, test_loader, rng, total, test_set, team)
    state.test_images = len(x_test)
    return state


def train_step(model, opt, x, y, team=SOLO):
    """One SGD step on a minibatch already on the device; (loss, mistakes) as device scalars.
    On N ranks (team): x, y are this rank's share, the ranks average their gradients before
    the step (parallel.py), and loss and mistakes are the whole minibatch's."""
    logits = model(Tensor(x))
    loss = F.cross_entropy(logits, y)
    opt.zero_grad()
    loss.backward()
    loss, wrong = team.exchange(model, loss.data, (logits.data.argmax(axis=1) != y).sum())
    opt.step()
    return loss, wrong


def train_one_epoch(state, stop):
    """Train from state.iteration to the end of its epoch, or of the run if that comes first.
    Returns False when Ctrl-C asked to stop first (after a whole step), else True."""
    done = state.iteration % state.batches_per_epoch  # batches of this epoch trained before a stop
    end = min(state.batches_per_epoch, done + state.total - state.iteration)
    batches = epoch_batches(state, done)
    epochs = math.ceil(state.total / state.batches_per_epoch)
    with tqdm(total=end, initial=done, desc=f"epoch {state.epoch}/{epochs}", unit="batch",
              leave=False, disable=state.recipe.quiet, dynamic_ncols=True) as bar:
        reading = "loss, error"
        for _ in range(done, end):
            if state.team.stopping(stop):
                return False
            x, y = next(batches)  # the whole minibatch; on N ranks, this rank trains its share
            xs, ys = state.team.shard(x, y)
            loss, wrong = train_step(state.model, state.opt,
                                     to_device(xs, state.device), to_device(ys, state.device), state.team)
            state.epoch_sums.add(loss, wrong, len(y))
            state.window_sums.add(loss, wrong, len(y))
            if state.iteration % READ_EVERY == 0:
                reading = read_window(state, bar)
            # every step: the last reading, and when the next comes
            left = READ_EVERY - state.iteration % READ_EVERY
            bar.set_postfix_str(f"{reading} (every {READ_EVERY} steps, next in {left})", refresh=False)
            bar.update()
    return True


def epoch_batches(state, done):
    """The current epoch's batches, after the first `done` of them.

    The random generator stands where the epoch began: the previous epoch ended there, or
    resume put it back there. The epoch's shuffle and the augmentation of its first `done`
    batches are drawn again and skipped, so the rest come out as in a run that never stopped."""
    batches = iter(state.train_loader)  # draws the epoch's shuffle
    for _ in range(done):
        next(batches)
    return batches


def read_window(state, bar):
    """Every READ_EVERY iterations: check the loss, feed the schedule (warm-up); returns the
    bar's reading (loss, error, lr, speed over the window)."""
    loss, error = state.window_sums.read()  # the loop's only wait for the device
    stops.check_finite(state, loss, "training loss")
    state.checked = state.iteration
    # the paper warms up "until the training error is below 80%": here, the error over the
    # last READ_EVERY minibatches (2560 images at batch 128)
    if state.opt.schedule.observe(error) and not bar.disable:
        tqdm.write(f"warm-up over at iteration {state.iteration}: training error {error:.1%}, "
                   f"lr {state.opt.schedule(state.iteration):g}")
    now = time.perf_counter()
    speed = state.window_sums.images / max(now - state.window_started, 1e-9)
    state.window_sums, state.window_started = Sums(), now
    return f"loss {loss:.3f}  err {error:.1%}  lr {state.opt.lr:g}  {speed:.0f} img/s"


def evaluate(model, loader, device, quiet=True, team=SOLO):
    """(mean loss, error as a fraction) over every image of loader, in eval mode, no graph.
    On N ranks (team): over the images of every rank's loader."""
    model.eval()
    loss_sum, wrong = 0.0, 0
    with no_grad():
        for x, y in tqdm(loader, desc="evaluating", unit="batch", leave=False, disable=quiet):
            x, y = to_device(x, device), to_device(y, device)
            logits = model(Tensor(x))
            loss_sum = loss_sum + F.cross_entropy(logits, y).data * len(y)
            wrong = wrong + (logits.data.argmax(axis=1) != y).sum()
    model.train()
    loss_sum, wrong = read_scalars(loss_sum, wrong)  # one wait for the device, at the end
    loss_sum, wrong, images = team.total(loss_sum, wrong, len(loader.x))
    return loss_sum / images, wrong / images


def end_of_epoch(state):
    """Measure the test set (every --eval-every epochs and at the end), log a row, save a checkpoint."""
    train_loss, train_error = state.epoch_sums.read()
    stops.check_finite(state, train_loss, "training loss")
    state.checked = state.iteration
    test_loss = test_error = math.nan  # log.csv says nan for an epoch that was not measured
    if test_due(state):
        with state.evaluating():
            test_loss, test_error = evaluate(state.model, state.test_loader, state.device, state.recipe.quiet,
                                             state.team)
        stops.check_finite(state, test_loss, f"{state.test_set} loss")
    row = {"iteration": state.iteration, "epoch": state.iteration / state.batches_per_epoch,
           "lr": state.opt.lr, "train_loss": train_loss, "train_error": 100 * train_error,
           "test_loss": test_loss, "test_error": 100 * test_error, "wall_time": state.wall_time()}
    state.rows.append(row)
    if state.iteration % state.batches_per_epoch == 0:  # a whole epoch: the next one starts here
        state.epoch_sums = Sums()
        state.epoch_rng = state.rng.bit_generator.state
    resume.save(state)  # first: it refuses weights that are no longer finite, and their row with them
    if state.writes:
        folder.append_row(state.out / folder.LOG, row)
    if not state.recipe.quiet:
        tqdm.write(report.epoch_line(state, row))


def test_due(state):
    """Is the test set measured at this epoch's end? Every --eval-every epochs, and at the run's end."""
    epochs_done = math.ceil(state.iteration / state.batches_per_epoch)
    return state.iteration >= state.total or epochs_done % state.recipe.eval_every == 0


def train_epochs(state, stop):
    """The epoch loop: train, evaluate, log and save every epoch, to the end of the run or a stop
    (stop: the StopRequest that Ctrl-C, SIGTERM and SIGHUP set)."""
    team = state.team
    team.agree(stop)  # on N ranks: a signal that reached any rank while starting stops them all
    with stops.stop_cleanly(state, stop, team.stopping):
        while state.iteration < state.total:
            reached_the_end = train_one_epoch(state, stop)
            if reached_the_end:
                end_of_epoch(state)
            else:                           # Ctrl-C (or SIGTERM) between two steps: save the state reached
                resume.save(state)
            team.agree(stop)
            if team.stopping(stop) and state.iteration < state.total:
                raise stops.interrupted(state, stop, at_epoch_end=reached_the_end)


def session(recipe, typed, argv):
    """Train as recipe says, from its start or from its checkpoint (--resume), to the end or to a
    stop; typed: the options the user gave (--resume takes the others from the checkpoint);
    argv: the command-line words config.json records. Returns the summary dict."""
    cpu.install()  # the CPU speed wing: faster conv, batch norm and ReLU, the same numbers
    team = parallel.team()  # one process, or N ranks under mpiexec: rank 0 decides, the others follow
    recipe = recipe.resolved()
    with stops.signals_caught() as stop, team.holding(recipe.out):  # one run at a time in --out
        recipe, ckpt = team.on_first(lambda: resume.open_run(recipe, typed))
        recipe = team.fit(recipe, fresh=ckpt is None)
        state = team.first_then_rest(lambda: build(recipe, team))
        team.together(lambda: resume.begin(state, ckpt, argv))
        team.start(state, stop)
        if not recipe.quiet:
            say(report.introduction(state))
        train_epochs(state, stop)
        return report.summarize(state)


def run(recipe=None, /, **options):
    """Train from Python, exactly as the command line would: run(depth=56, epochs=2), or
    run(Recipe(...)) (keywords then replace its fields). Returns the summary dict (final and
    best errors in percent, "out", "log"); errors are raised, not turned into exit codes.
    With resume=True, the options left at their defaults come from the checkpoint."""
    recipe = Recipe(**options) if recipe is None else dataclasses.replace(recipe, **options)
    summary = session(recipe, recipe.changed(), recipe.argv())
    if not recipe.quiet and parallel.speaks():
        say(report.summary_text(summary))
    return summary


def main(argv=None):
    """The command line: prints the summary (--quiet too) and returns it, or exits with one line
    and the status report.py lists."""
    with report.exit_status():
        summary = session(*parse_command_line(argv))
        if parallel.speaks():
            say(report.summary_text(summary))
        return summary


if __name__ == "__main__":
    main()
