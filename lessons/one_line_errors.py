"""Errors a learner can fix, shown in a notebook as one line that says what to do, not as a traceback.

The setup cell of every lesson calls install(): from then on a DataError (no CIFAR-10 where it
was looked for) or a DeviceError (no usable GPU) prints one line and stops the cell, as an error
still does, and the other errors keep their tracebacks. The command line's advice, --data-dir,
does not apply in a notebook, so a DataError says how to point a notebook at the data instead.
"""
import sys

from tinyresnet.data import HINT, DataError
from tinyresnet.device import DeviceError

NOTEBOOK_HINT = ('in a notebook, run os.environ["TINYRESNET_DATA"] = "DIR" in a cell, then this cell again '
                 '(or start Jupyter as: TINYRESNET_DATA=DIR jupyter lab lessons/), where DIR is the folder '
                 'that contains cifar-10-batches-py/')


def message(error):
    """The one line shown for `error`: its type and its message, with notebook advice for data."""
    text = str(error)
    if isinstance(error, DataError):
        text = text.replace(HINT, NOTEBOOK_HINT) if HINT in text else f"{text}; {NOTEBOOK_HINT}"
    return f"{type(error).__name__}: {text}"


def install(shell=None):
    """Show DataError and DeviceError as one line in this IPython/Jupyter session (no-op outside one)."""
    if shell is None:
        try:
            shell = get_ipython()  # noqa: F821 (defined inside IPython only)
        except NameError:
            return
    shell.set_custom_exc((DataError, DeviceError), _show)


def _show(shell, etype, value, tb, tb_offset=None):
    print(message(value), file=sys.stderr)
