"""The options of `python -m tinyresnet.train`: parse them, check them, and name a run after them.

The defaults are the paper's recipe (He et al. 2016, section 4.2). RECIPE lists the options
that define an experiment: --resume takes them from the checkpoint and refuses to change them.
`argv_for` turns keyword arguments (what `tinyresnet.train.run` takes) into the same command
line, so Python and the shell go through one parser.
"""
import argparse
import math
import shlex
import sys
from pathlib import Path

from . import models
from .checkpoint import CheckpointError

DEFAULT_ITERATIONS = 64000
VAL_SIZE = 5000      # --val-split: the paper's 45k/5k split
WARMUP_LR, WARMUP_UNTIL = 0.01, 0.80

# The options that define an experiment: --resume refuses to change them.
RECIPE = ("depth", "residual", "shortcut", "batch_size", "lr", "momentum", "weight_decay",
          "warmup", "subset", "test_subset", "val_split", "seed")
# ... and with its length: two runs with the same EXPERIMENT values are the same experiment
EXPERIMENT = RECIPE + ("iterations", "epochs")


class UsageError(ValueError):
    """A bad option or combination of options (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raise instead of printing usage and exiting: main() prints one line
        raise UsageError(message)


def build_parser(defaults=True):
    """The command line. defaults=False leaves out the options not typed (to see what was typed)."""
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    p = _Parser(prog="python -m tinyresnet.train",
                description="Train a CIFAR-10 ResNet or plain net (He et al. 2016, section 4.2). "
                            "Defaults are the paper's recipe.")
    net = p.add_argument_group("network")
    net.add_argument("--depth", type=int, default=d(20),
                     help="6n+2 layers; the paper's are 20, 32, 44, 56, 110, 1202 (default 20)")
    kind = net.add_mutually_exclusive_group()
    kind.add_argument("--residual", dest="residual", action="store_true", default=d(True),
                      help="ResNet: every two layers get a shortcut (default)")
    kind.add_argument("--plain", dest="residual", action="store_false", default=d(True),
                      help="the plain net: the same layers without shortcuts")
    net.add_argument("--shortcut", choices=models.SHORTCUTS, default=d("A"),
                     help="where the shape changes: A = zero-padded identity (default), B = 1x1 projection")
    opt = p.add_argument_group("optimization")
    opt.add_argument("--batch-size", type=int, default=d(128), help="minibatch size (default 128)")
    opt.add_argument("--lr", type=float, default=d(0.1), help="initial learning rate (default 0.1)")
    opt.add_argument("--momentum", type=float, default=d(0.9), help="(default 0.9)")
    opt.add_argument("--weight-decay", type=float, default=d(1e-4), help="(default 1e-4)")
    length = opt.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=int, default=d(None),
                        help=f"SGD steps; the LR is divided by 10 at 50%% and 75%% (default {DEFAULT_ITERATIONS})")
    length.add_argument("--epochs", type=int, default=d(None),
                        help="train this many epochs instead; the LR drops at 50%% and 75%% too")
    opt.add_argument("--warmup", action="store_true", default=d(False),
                     help=f"the paper's ResNet-110 warm-up: LR {WARMUP_LR} until the training error "
                          f"is below {100 * WARMUP_UNTIL:.0f}%%, then the schedule")
    data = p.add_argument_group("data")
    data.add_argument("--data-dir", default=d(None),
                      help="folder holding cifar-10-batches-py/ (default $TINYRESNET_DATA or "
                           "~/.cache/tinyresnet; downloaded if missing)")
    data.add_argument("--subset", type=int, default=d(None), metavar="N",
                      help="train on N images only (the same N for every --seed)")
    data.add_argument("--test-subset", type=int, default=d(None), metavar="N",
                      help="evaluate on N test images only, for CPU budgets (default: all 10,000)")
    data.add_argument("--val-split", action="store_true", default=d(False),
                      help=f"hold out {VAL_SIZE} training images and report them in the test_* columns")
    run_ = p.add_argument_group("run")
    run_.add_argument("--device", choices=("cpu", "gpu"), default=d("cpu"),
                      help="cpu (NumPy) or gpu (CuPy) (default cpu)")
    run_.add_argument("--out", default=d(None), metavar="DIR",
                      help="folder for log.csv, config.json, checkpoint.npz (default runs/<name>)")
    run_.add_argument("--resume", action="store_true", default=d(False),
                      help="continue the run saved in --out; options not typed come from its checkpoint")
    run_.add_argument("--seed", type=int, default=d(0),
                      help="seeds weight init, shuffling and augmentation (default 0)")
    run_.add_argument("--quiet", action="store_true", default=d(False),
                      help="no progress bars or per-epoch lines, only the summary")
    return p


def parse_args(argv=None):
    """Options from argv (default sys.argv[1:]) as a Namespace; UsageError when one is bad.

    Two extra fields: `argv` (the list parsed) and `explicit` (the options
    actually typed, which --resume does not take from the checkpoint).
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    args.explicit = sorted(vars(build_parser(defaults=False).parse_args(argv)))
    args.argv = argv
    check_args(args)
    if args.iterations is None and args.epochs is None:
        args.iterations = DEFAULT_ITERATIONS
    if args.out is None:
        args.out = str(Path("runs") / run_name(args))
    return args


def check_args(args):
    """UsageError, with one line saying why, for numbers that cannot work."""
    try:
        models.blocks_per_stage(args.depth)
    except ValueError as e:
        raise UsageError(f"--depth: {e}") from None
    for key in ("batch_size", "iterations", "epochs", "subset", "test_subset"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise UsageError(f"{_flag(key)} must be at least 1, got {value}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if not 0 <= args.momentum < 1:
        raise UsageError(f"--momentum must be in [0, 1), got {args.momentum}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise UsageError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")


def run_name(args):
    """Folder name: resnet20, plain56, resnet110-B."""
    kind = "resnet" if args.residual else "plain"
    return f"{kind}{args.depth}" + ("-B" if args.residual and args.shortcut == "B" else "")


def run_label(args):
    """Legend name, as in the paper's figures: ResNet-20, plain-56, ResNet-110 (B)."""
    if not args.residual:
        return f"plain-{args.depth}"
    return f"ResNet-{args.depth}" + (" (B)" if args.shortcut == "B" else "")


def merge_resumed_args(args, ckpt, path):
    """--resume: options not typed come from the checkpoint; typed recipe options must match it."""
    saved = ckpt.get("args") if isinstance(ckpt, dict) else None
    if not isinstance(saved, dict) or not all(k in saved for k in EXPERIMENT):
        raise CheckpointError(f"{path}: has no record of its options; cannot resume it")
    typed = set(getattr(args, "explicit", vars(args)))
    for key in RECIPE + ("device", "data_dir"):
        if key not in typed and key in saved:
            setattr(args, key, saved[key])
    if not typed & {"iterations", "epochs"}:
        args.iterations, args.epochs = saved["iterations"], saved["epochs"]
    changed = [k for k in RECIPE if getattr(args, k) != saved[k]]
    if changed:
        raise CheckpointError(f"{path} was trained with {spelled(saved, changed)}, not "
                              f"{spelled(vars(args), changed)}; resume with the same options "
                              "or start a new run in another --out")


def command_line(args):
    return "python -m tinyresnet.train " + shlex.join(getattr(args, "argv", []))


def saved_args(args):
    """The options as stored in config.json and checkpoints (parse_args's extra fields left out)."""
    return {k: v for k, v in vars(args).items() if k not in ("explicit", "argv", "test_set")}


def spelled(values, keys):
    """The command-line spelling of some options, e.g. '--depth 20 --plain' or 'no --subset'."""
    return " ".join(" ".join(_words(k, values[k]) or ["no " + _flag(k)]) for k in keys)


def _words(key, value):
    """One option as command-line words: ['--depth', '20'], ['--plain'], ['--warmup'], or [] when off."""
    if key == "residual":
        return ["--residual" if value else "--plain"]
    if isinstance(value, bool):
        return [_flag(key)] if value else []
    return [] if value is None else [_flag(key), str(value)]


def _flag(key):
    """batch_size -> '--batch-size'."""
    return "--" + key.replace("_", "-")


def argv_for(**options):
    """The command line that gives these options, e.g. argv_for(depth=56, residual=False)
    -> ['--depth', '56', '--plain']. Options at their defaults are left out, so that
    --resume still takes them from the checkpoint."""
    defaults = vars(build_parser().parse_args([]))
    argv = []
    for key, value in options.items():
        if key not in defaults:
            raise UsageError(f"unknown option {key!r}; the options are {', '.join(sorted(defaults))}")
        if not (value == defaults[key] and type(value) is type(defaults[key])):
            argv += _words(key, value)
    return argv
