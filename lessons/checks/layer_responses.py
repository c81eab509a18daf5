"""Lesson 07 (07_layer_responses.ipynb): the standard deviation of every 3x3 layer's response.

The reference is experiments.response_stds, the measurement lesson 07 plots when the
exercise is not written yet.
"""
import numpy as np

from experiments import response_stds
from tinyresnet import Tensor, no_grad
from tinyresnet.models import cifar_resnet
from tinyresnet.nn import manual_seed

from .harness import Mismatch, case, check, describe

SHAPE_HINT = ("x is a NumPy array (N, 3, 32, 32): wrap it as Tensor(x) for the model, and pass a list "
              "as the second argument, model(Tensor(x), responses); each response is a Tensor "
              "(N, C, H, W), and .numpy().std() is one float over all of its values.")


def responses_in_training_mode(model, x):
    """What a forgotten model.eval() gives (on a copy of the running statistics, restored after)."""
    saved = model.state_dict()
    responses = []
    with no_grad():
        model.train()
        model(Tensor(x), responses)
    model.load_state_dict(saved)
    return responses


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
        expected = response_stds(model, x)
        model.train()
        train_mode = [float(np.std(r.numpy())) for r in responses_in_training_mode(model, x)]
        name = f"{'ResNet' if residual else 'plain'}-{depth}"
        with case(f"{name} on 6 random images"):
            mine = layer_response_stds(model, x)
        if not hasattr(mine, "__len__") or len(mine) != len(expected):
            got = len(mine) if hasattr(mine, "__len__") else describe(mine)
            raise Mismatch(f"for {name} you returned {got} values; it has 6n+1 = {len(expected)} 3x3 layers.\n"
                           "hint: pass a list as model(Tensor(x), responses): the model appends one "
                           "tensor per 3x3 layer; return one float per entry.")
        mine = np.asarray(mine, dtype=np.float64)
        if not np.allclose(mine, expected, rtol=1e-4, atol=1e-6):
            k = int(np.argmax(np.abs(mine - expected)))
            hint = "take the std over all values of each response: images, channels and pixels together"
            if np.allclose(mine, train_mode, rtol=1e-3):
                hint = ("these are training-mode values: call model.eval() first, so that batch norm uses its "
                        "running statistics; in training mode it normalizes with the batch's own, and every "
                        "response comes out with std close to its gamma")
            raise Mismatch(f"for {name}, layer {k + 1}: yours {mine[k]:.6g}, expected {expected[k]:.6g}.\n"
                           f"hint: {hint}.")
        checked.append(f"{name} ({len(expected)} layers)")
    return f"{' and '.join(checked)}: the stds match, measured in eval mode"
