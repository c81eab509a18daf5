"""Lesson 07 (07_layer_responses.ipynb): the standard deviation of every 3x3 layer's response.

The reference is experiments.response_stds, the measurement lesson 07 plots when the
exercise is not written yet. The likely slips are named from what the learner's numbers
equal instead: training-mode values, the convolutions' outputs before batch norm; and from
what is left behind: hooks still on the model.
"""
import re

import numpy as np

from experiments import layer_responses, response_layers, response_stds
from tinyresnet import Tensor, no_grad
from tinyresnet.models import cifar_resnet
from tinyresnet.nn import Conv2d, manual_seed

from .harness import HOOKS_LEFT_HINT, Mismatch, case, check, describe, hooks_left_on

SHAPE_HINT = ("x is a NumPy array (N, 3, 32, 32): run the model as model(Tensor(x)). A forward hook "
              "fn(module, inputs, output) on each layer in response_layers(model) sees that layer's "
              "response as output, a Tensor (N, C, H, W); output.numpy().std() is one float over all "
              "of its values.")


def stds_in_training_mode(model, x):
    """What a forgotten model.eval() gives (on a copy of the running statistics, restored after)."""
    saved = model.state_dict()
    model.train()
    stds = layer_responses(model, x)
    model.load_state_dict(saved)
    model.eval()
    return np.array(stds, dtype=np.float64)


def stds_before_batch_norm(model, x):
    """The stds of the 3x3 convolutions' outputs: what hooks on the convolutions instead of the
    batch norms after them give."""
    stds = []
    convs = [m for m in model.modules() if isinstance(m, Conv2d)]
    handles = [c.register_forward_hook(lambda m, i, out: stds.append(float(out.numpy().std()))) for c in convs]
    try:
        with no_grad():
            model.eval()
            model(Tensor(x))
    finally:
        for handle in handles:
            handle.remove()
    return np.array(stds)


def _slip(mine, expected, model, x, saved):
    """The name of the slip that explains `mine`, or a general hint. saved: the model's state
    before the learner's call (a training-mode pass moves the running statistics)."""
    if np.allclose(mine, expected[::-1], rtol=1e-4, atol=1e-6):
        return ("the right stds in the wrong order: return them in network order, the order of "
                "response_layers(model), which is the order the forward pass calls the hooks in")
    if np.allclose(mine, expected ** 2, rtol=1e-4, atol=1e-6):
        return "those are variances: take the std, r.std()"
    model.load_state_dict(saved)
    if np.allclose(mine, stds_in_training_mode(model, x), rtol=1e-3):
        return ("these are training-mode values: call model.eval() first, so that batch norm uses its "
                "running statistics; in training mode it normalizes with the batch's own, and every "
                "response comes out with std close to its gamma")
    model.load_state_dict(saved)
    before = stds_before_batch_norm(model, x)
    if len(before) == len(mine) and np.allclose(mine, before, rtol=1e-3):
        return ("these are the stds of the convolutions' outputs, before batch norm: hook the batch norm "
                "after each 3x3 convolution, the modules in response_layers(model)")
    return "take the std over all values of each response: images, channels and pixels together"


@check("layer_response_stds", shape_hint=SHAPE_HINT)
def check_layer_response_stds(layer_response_stds):
    rng = np.random.default_rng(0)
    checked = []
    for depth, residual in ((8, True), (14, False)):
        manual_seed(depth)
        model = cifar_resnet(depth, residual)
        with no_grad():  # a few training-mode passes: running statistics unlike any one batch
            for _ in range(3):
                model(Tensor((2 + 3 * rng.standard_normal((8, 3, 32, 32))).astype(np.float32)))
        x = rng.standard_normal((6, 3, 32, 32)).astype(np.float32)
        expected = np.array(response_stds(model, x))
        model.train()
        saved = model.state_dict()
        name = f"{'ResNet' if residual else 'plain'}-{depth}"
        with case(f"{name} on 6 random images"):
            try:
                mine = layer_response_stds(model, x)
            except AttributeError as e:
                if not re.match(r"'(float|numpy\.float\d*|float\d+|int)' object", str(e)):
                    raise
                raise Mismatch(f"for {name} your code raised AttributeError: {e}\nhint: your hook returned a "
                               "number, and a value a forward hook returns REPLACES the module's output, so the "
                               "next layer got that number. Let the hook append the std to a list and return "
                               "nothing.") from e
        left = hooks_left_on(model)
        if left:
            raise Mismatch(f"for {name}: {left} forward hooks are still on the model after your function "
                           f"returned; the next call would measure every layer twice.\nhint: {HOOKS_LEFT_HINT}")
        layers = len(response_layers(model))
        if not hasattr(mine, "__len__") or len(mine) != layers:
            got = f"{len(mine)} values" if hasattr(mine, "__len__") else describe(mine)
            raise Mismatch(f"for {name} you returned {got}; it has 6n+1 = {layers} 3x3 layers.\n"
                           "hint: one forward hook on each module in response_layers(model), one float per "
                           "hook call: the std over all values of that layer's response.")
        mine = np.asarray(mine, dtype=np.float64)
        if not np.allclose(mine, expected, rtol=1e-4, atol=1e-6):
            k = int(np.argmax(np.abs(mine - expected)))
            raise Mismatch(f"for {name}, layer {k + 1}: yours {mine[k]:.6g}, expected {expected[k]:.6g}.\n"
                           f"hint: {_slip(mine, expected, model, x, saved)}.")
        checked.append(f"{name} ({layers} layers)")
    return f"{' and '.join(checked)}: the stds match, measured in eval mode, and the hooks came off again"
