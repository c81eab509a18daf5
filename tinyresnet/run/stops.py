"""How a run stops before its end: Ctrl-C (or SIGTERM, SIGHUP), a loss that is no longer a
number, or a file that cannot be written.

A first Ctrl-C asks the loop to stop after the current step, so that the state it saves is a
consistent one; a second one stops at once, and nothing half-done is saved. SIGTERM (what
schedulers, containers and service managers send) and SIGHUP (a closed terminal) get the same
treatment, and the exit status is the conventional 128 + the signal's number: 130 for Ctrl-C,
143 for SIGTERM, 129 for SIGHUP. A NaN or infinite loss stops the run, and the checkpoint on
disk (never one with NaN weights) stays as it was. Every message says where the run stopped,
which checkpoint is left, and how to go on.
"""
import contextlib
import math
import shlex
import signal
import warnings

import numpy as np

from .folder import CHECKPOINT
from .recipe import PROG


class Diverged(RuntimeError):
    """The loss became NaN or infinite (exit status 1)."""
    status = 1


class Interrupted(Exception):
    """Stopped by a signal (exit status 128 + its number); the message says how to go on."""

    def __init__(self, message, signum=signal.SIGINT):
        super().__init__(message)
        self.signum = signum
        self.status = 128 + signum

    @property
    def by(self):
        """'interrupted' (Ctrl-C), 'interrupted by SIGTERM', ..."""
        return "interrupted" if self.signum == signal.SIGINT else f"interrupted by {signal.Signals(self.signum).name}"


class WriteFailed(Exception):
    """A file in --out could not be written (exit status 1); says which, and which checkpoint is left."""
    status = 1


SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopRequest:
    """Handler of SIGNALS: the first one sets `requested` (the loop stops after the current
    step); a second one raises KeyboardInterrupt wherever the program is."""
    requested = False
    signum = signal.SIGINT

    def __call__(self, signum, frame):
        if self.requested:
            self.signum = signum
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum


@contextlib.contextmanager
def signals_caught():
    """Within (a whole session, from before its folder is claimed): Ctrl-C, SIGTERM and SIGHUP ask
    to stop (yields the StopRequest), so that no signal kills a run half-made and leaves its
    .lock behind; a second one raises KeyboardInterrupt. NumPy's warnings about overflow and
    invalid values are silenced too: the run checks its loss itself and says so in one line."""
    stop = StopRequest()
    try:
        previous = {s: signal.signal(s, stop) for s in SIGNALS}
    except ValueError:  # not the main thread: signals cannot reach this code anyway
        previous = {}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", FLOAT_WARNINGS, RuntimeWarning)
            yield stop
    except KeyboardInterrupt:  # a second signal before the training began
        if not stop.requested:
            raise
        raise Interrupted("stopped while starting, before the first step; nothing saved", stop.signum) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


FLOAT_WARNINGS = "(overflow|invalid value|divide by zero) encountered"


@contextlib.contextmanager
def stop_cleanly(state, stop, stopping=None):
    """Around the training: a KeyboardInterrupt in the middle of a step becomes Interrupted, and a
    failed write WriteFailed, both saying which checkpoint is kept. A stop asked for while the
    run was starting stops it before its first step. stopping(stop): whether to stop (default
    stop.requested; on N ranks, what all of them agreed, run/parallel.py)."""
    try:
        if stop.requested if stopping is None else stopping(stop):
            raise Interrupted(f"stopped before the first step; {resume_hint(state)}", stop.signum)
        yield
    except KeyboardInterrupt:
        raise Interrupted("stopped in the middle of a step, nothing saved; " + resume_hint(state),
                          stop.signum) from None
    except OSError as e:  # a full disk, say
        raise WriteFailed(f"{e}; {resume_hint(state)}") from None


def interrupted(state, stop, at_epoch_end):
    """The Interrupted to raise once the state reached is saved."""
    where = " (end of an epoch)" if at_epoch_end else ""
    return Interrupted(f"stopped at iteration {state.iteration}{where}; {resume_hint(state)}", stop.signum)


def resume_hint(state):
    if state.saved_iteration is None:
        return "no checkpoint was saved yet, so there is nothing to resume"
    return (f"{state.out / CHECKPOINT} holds iteration {state.saved_iteration}; go on with: "
            f"{state.team.launcher()}{PROG} --out {shlex.quote(str(state.out))} --resume")


def kept(state):
    """Which checkpoint a stopped run leaves."""
    if state.saved_iteration is None:
        return "no checkpoint was saved"
    return f"{state.out / CHECKPOINT} still holds iteration {state.saved_iteration}"


def check_finite(state, value, what):
    """Stop the run (Diverged) when a loss is NaN or inf; the checkpoint on disk stays as it is."""
    if not math.isfinite(value):
        raise diverged(state, f"the {what} is {value}")


def check_weights(state, weights):
    """Stop the run (Diverged) when a weight or batch-norm statistic (weights: name -> host array)
    is NaN or inf; a step can break them while the loss it computed was still finite."""
    broken = next((name for name, values in weights.items() if not np.isfinite(values).all()), None)
    if broken is not None:
        raise diverged(state, f"the model's weights are no longer finite ({broken} holds nan or inf)")


def diverged(state, what_happened):
    """The Diverged error: what happened and when, since when the loss was known finite, which
    checkpoint is kept."""
    since = (f" (the training loss was last read finite at iteration {state.checked})"
             if state.checked is not None and state.checked < state.iteration else "")
    return Diverged(f"{what_happened} at iteration {state.iteration}{since}; stopped, {kept(state)}; "
                    "try a smaller --lr or --warmup")
