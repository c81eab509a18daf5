"""What a training run holds while it runs; the checkpoint saves the parts that change (resume.py)."""
import contextlib
import math
import time
from pathlib import Path

from ..device import read_scalars
from .parallel import Solo


class State:
    """Everything a run holds.

    recipe                        the options (a Recipe)
    model, opt                    the net and SGD; opt.schedule gives the LR, opt.steps counts the steps
    train_loader, test_loader     host minibatches; train_loader draws from rng
    rng                           the one Generator for shuffling and augmentation
    iteration, total              SGD steps taken (opt.steps), and to take
    epoch_rng                     rng's state when the current epoch began (to replay it)
    epoch_sums, window_sums       running training loss and mistakes: this epoch, since the last read
    rows                          the log rows so far
    team, writes                  the processes training it (run/parallel.py), and whether this one
                                  writes the run folder (rank 0 does)
    """

    def __init__(self, recipe, model, opt, train_loader, test_loader, rng, total, test_set, team=None):
        self.recipe, self.out, self.device = recipe, Path(recipe.out), recipe.device
        self.team = Solo() if team is None else team  # the processes training it (run/parallel.py)
        self.writes = self.team.first    # only rank 0 writes to --out
        self.model, self.opt = model, opt
        self.train_loader, self.test_loader, self.rng, self.total = train_loader, test_loader, rng, total
        self.test_set = test_set         # "test", "val" or "test (1000 images)": what test_* measure
        self.batches_per_epoch = len(train_loader)
        self.test_images = len(test_loader.x)  # on N ranks, build sets the total of their parts
        self.epoch_rng = rng.bit_generator.state
        self.epoch_sums, self.window_sums = Sums(), Sums()
        self.rows = []
        self.saved_iteration = None      # iteration of the checkpoint on disk, if any
        self.wall_time_before = 0.0      # wall time of earlier sessions (resume)
        self.started = time.perf_counter()
        self.window_started = self.started
        self.eval_seconds = 0.0          # this session's time spent evaluating
        self.checked = None              # last iteration where the loss was read finite
        self.first_iteration = 0         # where this session began

    @property
    def iteration(self):
        return self.opt.steps

    @property
    def epoch(self):
        """The epoch being trained, counting from 1."""
        return self.iteration // self.batches_per_epoch + 1

    def wall_time(self):
        return self.wall_time_before + time.perf_counter() - self.started

    @contextlib.contextmanager
    def evaluating(self):
        """Time spent within is evaluation, not training: the speeds shown leave it out."""
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        self.eval_seconds += seconds
        self.window_started += seconds


class Sums:
    """Running sums of minibatch losses and mistakes.

    The sums live where the model runs: adding a GPU loss gives a GPU scalar
    and nothing waits for the GPU. Only read() brings the values to the host.
    """

    def __init__(self, loss=0.0, wrong=0, images=0, steps=0):
        self.loss, self.wrong, self.images, self.steps = loss, wrong, images, steps

    def add(self, loss, wrong, images):
        self.loss = self.loss + loss
        self.wrong = self.wrong + wrong
        self.images += images
        self.steps += 1

    def read(self):
        """(mean minibatch loss, error as a fraction): one transfer, which waits for the device."""
        if not self.steps:
            return math.nan, math.nan
        loss, wrong = read_scalars(self.loss, self.wrong)
        return loss / self.steps, wrong / self.images

    def state_dict(self):
        """The sums as host numbers (for the checkpoint)."""
        loss, wrong = read_scalars(self.loss, self.wrong)
        return {"loss": loss, "wrong": int(wrong), "images": self.images, "steps": self.steps}
