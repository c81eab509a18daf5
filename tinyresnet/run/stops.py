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
def stop_cleanly(state):
    """Within: Ctrl-C, SIGTERM or SIGHUP asks to stop (yields the StopRequest); a KeyboardInterrupt
    in the middle of a step becomes Interrupted, and a failed write WriteFailed, both saying which
    checkpoint is kept."""
    stop = StopRequest()
    try:
        previous = {s: signal.signal(s, stop) for s in SIGNALS}
    except ValueError:  # not the main thread: signals cannot reach this code anyway
        previous = {}
    try:
        yield stop
    except KeyboardInterrupt:
        raise Interrupted("stopped in the middle of a step, nothing saved; " + resume_hint(state),
                          stop.signum) from None
    except OSError as e:  # a full disk, say
        raise WriteFailed(f"{e}; {resume_hint(state)}") from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def interrupted(state, stop, at_epoch_end):
    """The Interrupted to raise once the state reached is saved."""
    where = " (end of an epoch)" if at_epoch_end else ""
    return Interrupted(f"stopped at iteration {state.iteration}{where}; {resume_hint(state)}", stop.signum)


def resume_hint(state):
    if state.saved_iteration is None:
        return "no checkpoint was saved yet, so there is nothing to resume"
    return (f"{state.out / CHECKPOINT} holds iteration {state.saved_iteration}; go on with: "
            f"{PROG} --out {shlex.quote(str(state.out))} --resume")


def kept(state):
    """Which checkpoint a stopped run leaves."""
    if state.saved_iteration is None:
        return "no checkpoint was saved"
    return f"{state.out / CHECKPOINT} still holds iteration {state.saved_iteration}"


def check_finite(state, value, what):
    """Stop the run (Diverged) when a loss is NaN or inf; the checkpoint on disk stays as it is."""
    if math.isfinite(value):
        state.checked = state.iteration
        return
    raise Diverged(f"the {what} is {value} at iteration {state.iteration} (it was finite at iteration "
                   f"{state.checked}); stopped, {kept(state)}; try a smaller --lr or --warmup")
