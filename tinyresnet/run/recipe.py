"""A run's recipe: every option of `python -m tinyresnet.train`, its default and its help, in one place.

`Recipe` is a dataclass, and the command line is generated from its fields, so the shell and
Python (`tinyresnet.train.run(Recipe(depth=56))` or `run(depth=56)`) go through the same
defaults and checks. config.json stores a run's Recipe under "args". The defaults are the
paper's recipe (He et al. 2016, section 4.2).

Each field has a role for --resume:
  fixed    defines the experiment: --resume takes it from the checkpoint and refuses a change
  length   iterations or epochs: --resume takes it from the checkpoint unless one is typed
  where    device and data folder: taken from the checkpoint unless typed
  session  out, resume, quiet: this session only
"""
import argparse
import dataclasses
import math
import shlex
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import models
from ..device import DEVICES
from ..optim import WARMUP_FRACTION, WARMUP_UNTIL

PROG = "python -m tinyresnet.train"
DEFAULT_ITERATIONS = 64000
VAL_SIZE = 5000      # --val-split: the paper's 45k/5k split


class UsageError(ValueError):
    """A bad option or combination of options (exit status 2)."""


def option(default, role, group, help, **argparse_options):
    """A Recipe field: its default, its role for --resume, and how the command line shows it."""
    return field(default=default, metadata={"role": role, "group": group, "help": help, **argparse_options})


@dataclass(frozen=True)
class Recipe:
    """Every option of a run; the field order is the order of --help and of config.json."""
    depth: int = option(20, "fixed", "network",
                        "6n+2 layers; the paper's are 20, 32, 44, 56, 110, 1202 (default 20)")
    residual: bool = option(True, "fixed", "network",
                            "ResNet: every two layers get a shortcut (default)",
                            off="--plain", off_help="the plain net: the same layers without shortcuts")
    shortcut: str = option("A", "fixed", "network",
                           "where the shape changes: A = zero-padded identity (default), B = 1x1 projection",
                           choices=models.SHORTCUTS)
    batch_size: int = option(128, "fixed", "optimization",
                             "minibatch size (default 128); with mpiexec -n N, the global batch, "
                             "shared out among the N processes")
    bn_batch: Optional[int] = option(None, "fixed", "optimization",
                                     "ghost batch norm: normalize each B-image slice of a minibatch on "
                                     "its own, as the paper's two GPUs did with 64 images each (default: "
                                     "the whole minibatch; with mpiexec, each process's share)", metavar="B")
    lr: float = option(0.1, "fixed", "optimization", "initial learning rate (default 0.1)")
    momentum: float = option(0.9, "fixed", "optimization", "(default 0.9)")
    weight_decay: float = option(1e-4, "fixed", "optimization", "(default 1e-4)")
    iterations: Optional[int] = option(
        None, "length", "optimization",
        f"SGD steps; the LR is divided by 10 at 50%% and 75%% (default {DEFAULT_ITERATIONS})", exclusive="length")
    epochs: Optional[int] = option(None, "length", "optimization",
                                   "train this many epochs instead; the LR drops at 50%% and 75%% too",
                                   exclusive="length")
    warmup: bool = option(False, "fixed", "optimization",
                          f"the paper's ResNet-110 warm-up: LR/{1 / WARMUP_FRACTION:g} (0.01 at --lr 0.1) until "
                          f"the training error is below {100 * WARMUP_UNTIL:.0f}%%, then the schedule")
    data_dir: Optional[str] = option(None, "where", "data",
                                     "folder holding cifar-10-batches-py/ (default $TINYRESNET_DATA or "
                                     "~/.cache/tinyresnet; downloaded if missing)")
    subset: Optional[int] = option(None, "fixed", "data",
                                   "train on N images only (the same N for every --seed)",
                                   metavar="N")
    test_subset: Optional[int] = option(None, "fixed", "data",
                                        "evaluate on N test images only, for CPU budgets (default: all 10,000)",
                                        metavar="N")
    eval_every: int = option(1, "where", "data",
                             "measure the test set every N epochs, and at the end (default 1: every "
                             "epoch); the other epochs log no test error", metavar="N")
    val_split: bool = option(False, "fixed", "data",
                             f"hold out {VAL_SIZE} training images and report them in the test_* columns")
    device: str = option("cpu", "where", "run", "cpu (NumPy) or gpu (CuPy) (default cpu)", choices=DEVICES)
    out: Optional[str] = option(None, "session", "run",
                                "folder for log.csv, config.json, checkpoint.npz (default runs/<name>)",
                                metavar="DIR")
    resume: bool = option(False, "session", "run",
                          "continue the run saved in --out; options not typed come from its checkpoint. "
                          "To extend a finished run, resume it with a larger --iterations or --epochs: "
                          "the LR drops move to 50%% and 75%% of the new length (if the run had passed "
                          "a drop, its LR goes back up; a warning says so)")
    seed: int = option(0, "fixed", "run", "seeds weight init, shuffling and augmentation (default 0)")
    quiet: bool = option(False, "session", "run", "no progress bars or per-epoch lines, only the summary")

    def __post_init__(self):
        for name in ("data_dir", "out"):  # a Path is welcome; the recipe keeps its text
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        check(self)

    def resolved(self):
        """The recipe a run records: the default length and --out filled in."""
        length = {} if self.epochs is not None or self.iterations is not None else {"iterations": DEFAULT_ITERATIONS}
        out = {} if self.out is not None else {"out": str(Path("runs") / self.name)}
        return dataclasses.replace(self, **length, **out)

    @property
    def name(self):
        """Folder name: resnet20, plain56, resnet110-B."""
        return run_name(self.depth, self.residual, self.shortcut)

    @property
    def label(self):
        """Legend name, as in the paper's figures: ResNet-20, plain-56, ResNet-110 (B)."""
        return models.network_name(self.depth, self.residual, self.shortcut)

    def total_iterations(self, batches_per_epoch):
        return self.iterations if self.iterations is not None else self.epochs * batches_per_epoch

    def changed(self):
        """The fields that differ from their defaults: what a Python caller asked for."""
        return {f.name for f in FIELDS if not _same(getattr(self, f.name), f.default)}

    def argv(self, names=None):
        """The command-line words that give these fields (default: the changed ones), e.g.
        Recipe(depth=56, residual=False).argv() -> ['--depth', '56', '--plain']."""
        names = self.changed() if names is None else set(names)
        return [word for f in FIELDS if f.name in names for word in _words(f.name, getattr(self, f.name))]

    def experiment(self):
        """The values that make two runs the same experiment (EXPERIMENT)."""
        return {k: getattr(self, k) for k in EXPERIMENT}

    def as_dict(self):
        return dataclasses.asdict(self)


FIELDS = dataclasses.fields(Recipe)
FIXED = tuple(f.name for f in FIELDS if f.metadata["role"] == "fixed")     # --resume refuses to change these
LENGTH = tuple(f.name for f in FIELDS if f.metadata["role"] == "length")
WHERE = tuple(f.name for f in FIELDS if f.metadata["role"] == "where")
EXPERIMENT = FIXED + LENGTH   # two runs with the same values here are the same experiment
# options added after runs were saved, with the value that those runs had in effect: a saved run
# whose options lack one of these was trained with this value
ADDED_LATER = {"bn_batch": None}  # before --bn-batch, batch norm normalized whole minibatches


def with_added_later(saved):
    """A saved run's options (a dict) with each option of ADDED_LATER it lacks filled in; else as is."""
    return {**ADDED_LATER, **saved} if isinstance(saved, dict) else saved


def run_name(depth, residual, shortcut="A"):
    kind = "resnet" if residual else "plain"
    return f"{kind}{depth}" + ("-B" if residual and shortcut == "B" else "")


def _same(value, default):
    return value == default and type(value) is type(default)


def check(recipe):
    """UsageError, with one line saying why, for a value of the wrong kind or a number that cannot work."""
    r = recipe
    for f in FIELDS:
        value, kind = getattr(r, f.name), _kind(f)
        if not (value is None and f.default is None or _fits(value, kind)):
            raise UsageError(f"{flag(f.name)} must be {KINDS[kind]}, got {value!r}")
    try:
        models.blocks_per_stage(r.depth)
    except ValueError as e:
        raise UsageError(f"--depth: {e}") from None
    for key, allowed in (("shortcut", models.SHORTCUTS), ("device", DEVICES)):
        if getattr(r, key) not in allowed:
            raise UsageError(f"{flag(key)} must be one of {', '.join(allowed)}, got {getattr(r, key)!r}")
    if r.out is not None and not r.out.strip():
        raise UsageError(f"--out must name a folder, got {r.out!r}")
    if r.iterations is not None and r.epochs is not None:
        raise UsageError("--iterations and --epochs: give one of them, not both")
    for key in ("batch_size", "bn_batch", "iterations", "epochs", "subset", "test_subset", "eval_every"):
        value = getattr(r, key)
        if value is not None and value < 1:
            raise UsageError(f"{flag(key)} must be at least 1, got {value}")
    if r.bn_batch is not None and r.batch_size % r.bn_batch:
        raise UsageError(f"--bn-batch {r.bn_batch} must divide --batch-size {r.batch_size} into equal slices")
    if not (math.isfinite(r.lr) and r.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {r.lr}")
    if not 0 <= r.momentum < 1:
        raise UsageError(f"--momentum must be in [0, 1), got {r.momentum}")
    if not (math.isfinite(r.weight_decay) and r.weight_decay >= 0):
        raise UsageError(f"--weight-decay must be >= 0, got {r.weight_decay}")
    if r.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {r.seed}")


KINDS = {int: "a whole number", float: "a number", str: "text", bool: "True or False"}


def _kind(f):
    """A field's type without the Optional: int for Optional[int]."""
    return next((a for a in typing.get_args(f.type) if a is not type(None)), f.type)


def _fits(value, kind):
    if kind is bool:
        return isinstance(value, bool)
    numbers = (int, float) if kind is float else (kind,)
    return isinstance(value, numbers) and not isinstance(value, bool)


# ------------------------------------------------------------------ the command line

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raise instead of printing usage and exiting: main() prints one line
        raise UsageError(message)


def build_parser(defaults=True):
    """The command line, one option per Recipe field. defaults=False leaves out the options
    not typed (to see what was typed)."""
    p = _Parser(prog=PROG,
                description="Train a CIFAR-10 ResNet or plain net (He et al. 2016, section 4.2). "
                            "Defaults are the paper's recipe.")
    groups, exclusive = {}, {}
    for f in FIELDS:
        meta = dict(f.metadata)
        del meta["role"]
        group_name, help_ = meta.pop("group"), meta.pop("help")
        group = groups.get(group_name) or groups.setdefault(group_name, p.add_argument_group(group_name))
        if "exclusive" in meta or "off" in meta:
            key = meta.pop("exclusive", f.name)
            group = exclusive.get(key) or exclusive.setdefault(key, group.add_mutually_exclusive_group())
        default = f.default if defaults else argparse.SUPPRESS
        if f.type is bool:
            off, off_help = meta.pop("off", None), meta.pop("off_help", None)
            group.add_argument(flag(f.name), dest=f.name, action="store_true", default=default, help=help_)
            if off:
                group.add_argument(off, dest=f.name, action="store_false", default=default, help=off_help)
        else:
            group.add_argument(flag(f.name), type=_kind(f), default=default, help=help_, **meta)
    return p


def parse_command_line(argv=None):
    """(Recipe, the names of the options typed, the argv list) from argv (default
    sys.argv[1:]); UsageError when an option is bad. --resume does not take the typed
    options from the checkpoint."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    recipe = Recipe(**vars(build_parser().parse_args(argv)))
    typed = set(vars(build_parser(defaults=False).parse_args(argv)))
    return recipe, typed, argv


def command_line(argv):
    """The command that gives these words: 'python -m tinyresnet.train --depth 56'."""
    return f"{PROG} {shlex.join(argv)}"


def spelled(values, keys):
    """The command-line spelling of some options, e.g. '--depth 20 --plain' or 'no --subset'."""
    return " ".join(" ".join(_words(k, values[k]) or ["no " + flag(k)]) for k in keys)


def _words(key, value):
    """One option as command-line words: ['--depth', '20'], ['--plain'], ['--warmup'], or [] when off."""
    if key == "residual":
        return ["--residual" if value else "--plain"]
    if isinstance(value, bool):
        return [flag(key)] if value else []
    return [] if value is None else [flag(key), str(value)]


def flag(key):
    """batch_size -> '--batch-size'."""
    return "--" + key.replace("_", "-")
