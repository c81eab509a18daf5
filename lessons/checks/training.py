"""Lesson 04 (04_training.ipynb): one step of SGD with momentum and weight decay.

The learner's step runs side by side with tinyresnet.optim.SGD through a learning-rate
schedule with drops, and every step is compared.
"""
import numpy as np

from tinyresnet import Tensor
from tinyresnet.optim import SGD

from .harness import Mismatch, case, check, returned

SHAPE_HINT = ("w, grad and velocity all have one shape, and so do new_w and new_velocity: the update "
              "is elementwise, with no @ and no sums.")
SGD_SHAPES = [(3,), (4, 5), (2, 3, 3, 3)]
SGD_LRS = [0.1, 0.1, 0.1, 0.01, 0.01, 0.001]     # a step schedule: two formulations part at a drop
SGD_SETTINGS = [(0.9, 1e-4), (0.9, 0.05), (0.0, 0.0), (0.5, 0.01)]   # (momentum, weight_decay)


def _sgd_hint(w, g, v, lr, momentum, wd, new_w, new_v, step):
    """Which common slip reproduces the learner's numbers, if any."""
    def near(a, b):
        return np.allclose(a, b, rtol=1e-7, atol=1e-10)
    full = g + wd * w
    if near(new_v, momentum * v + g) and not near(new_v, momentum * v + full):
        return "new_velocity ignores weight decay: add weight_decay * w to the gradient first (g = grad + weight_decay * w)."
    if near(new_w, w - lr * full) and momentum and step:
        return "new_w = w - lr * g does not use the velocity: step with the new velocity, w - lr * new_velocity."
    if near(new_v, momentum * v - lr * full) and not near(new_v, momentum * v + full):
        return ("your velocity includes the learning rate (v = momentum * v - lr * g, w = w + v). That is the "
                "other common form; here, as in PyTorch and tinyresnet, v = momentum * v + g is a sum of "
                "gradients and lr multiplies it at the step: w = w - lr * v. The two agree until the "
                "learning rate changes, and differ after every drop of the schedule.")
    if near(new_w, w + lr * (momentum * v + full)):
        return "the step goes uphill: subtract lr * new_velocity from w."
    if near(new_w, w - lr * (momentum * v + g) - lr * wd * w) and wd:
        return ("weight decay is applied to w outside the velocity; in this optimizer it is part of the "
                "gradient, so it goes into the velocity too: g = grad + weight_decay * w, v = momentum * v + g.")
    return ("write the three lines one by one: g = grad + weight_decay * w; "
            "new_velocity = momentum * velocity + g; new_w = w - lr * new_velocity.")


@check("sgd_momentum_step", shape_hint=SHAPE_HINT)
def check_sgd_momentum_step(sgd_momentum_step):
    rng, steps = np.random.default_rng(0), 0
    for momentum, wd in SGD_SETTINGS:
        for shape in SGD_SHAPES:
            w = rng.standard_normal(shape)
            v = np.zeros(shape)
            p = Tensor(w.copy(), requires_grad=True)      # float64, so that both sides agree to rounding
            opt = SGD([p], lr=SGD_LRS[0], momentum=momentum, weight_decay=wd)
            for step, lr in enumerate(SGD_LRS):
                g = rng.standard_normal(shape)
                with case(f"step {step + 1} (lr {lr}, momentum {momentum}, weight_decay {wd}, shape {shape})"):
                    result = sgd_momentum_step(w.copy(), g.copy(), v.copy(), lr, momentum, wd)
                new_w, new_v = (np.asarray(a, dtype=np.float64) for a in returned(
                    result, "sgd_momentum_step", [("new_w", shape), ("new_velocity", shape)]))
                p.grad, opt.lr = g.copy(), lr
                opt.step()
                expected_w, expected_v = p.data.copy(), opt.velocity[0].copy()
                for name, mine, theirs in (("new_velocity", new_v, expected_v), ("new_w", new_w, expected_w)):
                    if not np.allclose(mine, theirs, rtol=1e-9, atol=1e-12):
                        i = np.unravel_index(np.argmax(np.abs(mine - theirs)), shape)
                        raise Mismatch(
                            f"step {step + 1} (lr {lr}, momentum {momentum}, weight_decay {wd}, shape {shape}): "
                            f"{name}[{', '.join(map(str, i))}] is {mine[i]:.8g}, tinyresnet.optim.SGD has "
                            f"{theirs[i]:.8g}\nhint: {_sgd_hint(w, g, v, lr, momentum, wd, new_w, new_v, step)}")
                w, v = new_w, new_v
                steps += 1
    return (f"{steps} steps on {len(SGD_SHAPES)} shapes, {len(SGD_SETTINGS)} (momentum, weight decay) "
            "settings and an LR schedule with drops: identical to tinyresnet.optim.SGD")
