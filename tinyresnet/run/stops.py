"""How a run stops before its end: Ctrl-C, or a loss that is no longer a number.

A first Ctrl-C asks the loop to stop after the current step, so that the state it saves is a
consistent one; a second one stops at once, and nothing half-done is saved. A NaN or infinite
loss stops the run, and the checkpoint on disk (never one with NaN weights) stays as it was.
Either way the message says where the run stopped and how to go on.
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
    """Stopped by Ctrl-C (exit status 130); the message says how to go on."""
    status = 130


class StopRequest:
    """SIGINT handler: the first Ctrl-C sets `requested` (the loop stops after the current
    step); a second one raises KeyboardInterrupt wherever the program is."""
    requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@contextlib.contextmanager
def stop_cleanly(state):
    """Within: Ctrl-C asks to stop (yields the StopRequest); a KeyboardInterrupt in the middle of a
    step becomes Interrupted, saying which checkpoint is kept."""
    stop = StopRequest()
    try:
        previous = signal.signal(signal.SIGINT, stop)
    except ValueError:  # not the main thread: Ctrl-C cannot reach this code anyway
        previous = False
    try:
        yield stop
    except KeyboardInterrupt:
        raise Interrupted("stopped in the middle of a step, nothing saved; " + resume_hint(state)) from None
    finally:
        if previous is not False:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def interrupted(state, at_epoch_end):
    """The Interrupted to raise once the state reached is saved."""
    where = " (end of an epoch)" if at_epoch_end else ""
    return Interrupted(f"stopped at iteration {state.iteration}{where}; {resume_hint(state)}")


def resume_hint(state):
    if state.saved_iteration is None:
        return "no checkpoint was saved yet, so there is nothing to resume"
    return (f"{state.out / CHECKPOINT} holds iteration {state.saved_iteration}; go on with: "
            f"{PROG} --out {shlex.quote(str(state.out))} --resume")


def check_finite(state, value, what):
    """Stop the run (Diverged) when a loss is NaN or inf; the checkpoint on disk stays as it is."""
    if math.isfinite(value):
        state.checked = state.iteration
        return
    kept = (f"{state.out / CHECKPOINT} still holds iteration {state.saved_iteration}"
            if state.saved_iteration is not None else "no checkpoint was saved")
    raise Diverged(f"the {what} is {value} at iteration {state.iteration} (it was finite at iteration "
                   f"{state.checked}); stopped, {kept}; try a smaller --lr or --warmup")
