"""The CPU speed wing: the core's convolution, batch norm and ReLU, faster on a CPU, same numbers.

The core (tinyresnet/*.py) is written as its definitions, the math a learner reads, and never
imports this package. Here are versions of a few of its functions that compute the same
numbers faster on a CPU: in cache-sized chunks, on every core, in NumPy's vector loops. They
may be locally complex; tests/cpu/ holds each one equal to the definition it replaces.

install() is the one place that puts them in, by the table REPLACEMENTS below: each core
function (a module attribute the core looks up when it runs) is replaced by a chooser that
runs the fast version when it applies (NumPy arrays, laid out as it needs) and the definition
otherwise (CuPy arrays on a GPU, unusual layouts). The run wing (`python -m tinyresnet.train`)
and the benchmarks call it; a notebook may too:

    import tinyresnet.cpu
    tinyresnet.cpu.install()            # the fast versions, until uninstall()
    with tinyresnet.cpu.definitions():  # the plain definitions, for a while
        ...

The switch for learners and tests: with TINYRESNET_DEFINITIONS=1 in the environment,
install() leaves the definitions in place.
"""
import contextlib
import functools
import os

import numpy as np

from .. import autograd, batchnorm as core_batchnorm, conv as core_conv
from . import batchnorm as fast_batchnorm  # (this also binds the names batchnorm and conv here
from . import conv as fast_conv            # to the fast modules, hence core_ for the core's)
from . import relu as fast_relu
from .memory import keep_freed_memory

SWITCH = "TINYRESNET_DEFINITIONS"


def _numpy(*arrays):
    return all(isinstance(a, np.ndarray) for a in arrays)


# (core module, function name, fast version, when the fast version applies to the call's arguments)
REPLACEMENTS = (
    (core_conv, "forward", fast_conv.forward, lambda x, w, *_: _numpy(x, w)),
    (core_conv, "backward", fast_conv.backward, lambda x, g, w, *_: _numpy(x, g, w)),
    (core_batchnorm, "statistics", fast_batchnorm.statistics, lambda x: fast_batchnorm.applies(x)),
    (core_batchnorm, "normalize", fast_batchnorm.normalize, lambda a, *_: fast_batchnorm.applies(a)),
    (core_batchnorm, "gradient_sums", fast_batchnorm.gradient_sums,
     lambda g, c: fast_batchnorm.applies(g, c)),
    (core_batchnorm, "input_gradient", fast_batchnorm.input_gradient,
     lambda g, c, *_: fast_batchnorm.applies(g, c)),
    (autograd, "relu_forward", fast_relu.relu_forward, lambda a: fast_relu.applies(a)),
    (autograd, "relu_backward", fast_relu.relu_backward, lambda g, out: fast_relu.applies(g, out)),
)
DEFINITIONS = {(module, name): getattr(module, name) for module, name, _, _ in REPLACEMENTS}


def chooser(definition, fast, applies):
    """A function that runs fast(*args) when applies(*args), else definition(*args)."""
    @functools.wraps(definition)
    def choose(*args):
        return fast(*args) if applies(*args) else definition(*args)
    choose.definition, choose.fast = definition, fast
    return choose


def install():
    """Put the fast versions in place of the core's definitions, and keep freed memory for the
    next step (memory.py). Returns True, or False when TINYRESNET_DEFINITIONS=1 says not to."""
    if os.environ.get(SWITCH) == "1":
        return False
    for module, name, fast, applies in REPLACEMENTS:
        setattr(module, name, chooser(DEFINITIONS[module, name], fast, applies))
    keep_freed_memory()
    return True


def uninstall():
    """Put the core's definitions back."""
    for (module, name), definition in DEFINITIONS.items():
        setattr(module, name, definition)


def installed():
    """Are the fast versions in place?"""
    return any(getattr(module, name) is not definition for (module, name), definition in DEFINITIONS.items())


@contextlib.contextmanager
def definitions():
    """Run the block with the core's plain definitions, then restore what was in place."""
    current = {key: getattr(*key) for key in DEFINITIONS}
    uninstall()
    try:
        yield
    finally:
        for (module, name), function in current.items():
            setattr(module, name, function)
