"""Lesson 04 (04_training.ipynb): softmax cross-entropy, and one step of SGD with momentum.

The learner's loss and gradient are compared with tinyresnet.functional.cross_entropy and
gradchecked; the learner's step runs side by side with tinyresnet.optim.SGD through a
learning-rate schedule with drops, and every step is compared.
"""
import numpy as np

from tinyresnet import Tensor, gradcheck
from tinyresnet.functional import cross_entropy
from tinyresnet.optim import SGD

from .harness import Mismatch, case, check, describe, returned

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
        return ("new_velocity ignores weight decay: add weight_decay * w to the gradient first "
                "(g = grad + weight_decay * w).")
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


# ------------------------------------------------------------------ softmax cross-entropy

# (what, N, K, logit scale): the last two are the ones that break a naive exp()
CROSS_ENTROPY_CASES = [("4 images, 10 classes", 4, 10, 3.0), ("1 image, 2 classes", 1, 2, 1.0),
                       ("6 images, 10 classes, all scores equal", 6, 10, 0.0),
                       ("3 images, 5 classes, scores around ±1000", 3, 5, 1000.0)]
CROSS_ENTROPY_SHAPE_HINT = ("logits are (N, K) and labels (N,): take max and sum over axis 1 with "
                            "keepdims=True so that they broadcast against (N, K); p[np.arange(N), labels] "
                            "picks each image's right class; loss is one number, dlogits (N, K).")


def cross_entropy_case(what, n, k, scale):
    rng = np.random.default_rng(n * 100 + k)
    logits = rng.standard_normal((n, k)) * scale if scale else np.full((n, k), 0.7)
    return logits, rng.integers(0, k, n)


def library_cross_entropy(logits, labels):
    """(loss, dlogits) from tinyresnet.functional.cross_entropy."""
    t = Tensor(logits.copy(), requires_grad=True)
    loss = cross_entropy(t, labels)
    loss.backward()
    return loss.item(), t.grad


def _cross_entropy_slip(loss, dlogits, expected_loss, expected_grad, logits, labels):
    """The usual slip that reproduces the learner's numbers."""
    n = len(labels)
    if not np.isfinite(loss) or not np.all(np.isfinite(dlogits)):
        return ("exp() overflowed (e^1000 is inf in any float type): subtract each row's largest score "
                "first; softmax(z - max z) = softmax(z), and the exponents are then <= 0.")
    if np.isclose(loss, n * expected_loss) and n > 1:
        return "the loss is summed over the batch; it is the mean: divide by N."
    if np.isclose(loss, -expected_loss):
        return "the sign: the loss is MINUS the log-probability of the right class (a positive number)."
    p = np.exp(logits - logits.max(axis=0, keepdims=True))
    p /= p.sum(axis=0, keepdims=True)
    if np.isclose(loss, -np.log(p[np.arange(n), labels]).mean()) and n > 1:
        return "the softmax runs over axis 0 (the images); it runs over the classes, axis 1."
    if not np.isclose(loss, expected_loss, rtol=1e-6, atol=1e-9):
        return "the loss is the mean over the batch of -log softmax(logits)[n, labels[n]]."
    if np.allclose(dlogits, n * expected_grad) and n > 1:
        return "dlogits is the gradient of the SUM over the batch: the loss is a mean, so divide by N."
    if np.allclose(dlogits, -expected_grad):
        return "the sign of dlogits: it is softmax minus the one-hot label, not the other way round."
    onehot = np.zeros_like(logits)
    onehot[np.arange(n), labels] = 1
    if np.allclose(dlogits, expected_grad + onehot / n):
        return "the one-hot label is not subtracted: d(-log p_y)/dz_k = p_k - [k == y]."
    return ("derive d(-log p_y)/dz_k in two cases, k == y and k != y; both come out as "
            "p_k minus something.")


@check("softmax_cross_entropy", shape_hint=CROSS_ENTROPY_SHAPE_HINT)
def check_softmax_cross_entropy(softmax_cross_entropy):
    worst = 0.0
    for what, n, k, scale in CROSS_ENTROPY_CASES:
        logits, labels = cross_entropy_case(what, n, k, scale)
        expected_loss, expected_grad = library_cross_entropy(logits, labels)
        with case(what):
            result = softmax_cross_entropy(logits.copy(), labels.copy())
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise Mismatch(f"softmax_cross_entropy must return a tuple (loss, dlogits), got {describe(result)}")
        loss, dlogits = result
        if np.ndim(loss) != 0:
            raise Mismatch(f"for {what} the loss has shape {np.shape(loss)}; it is one number, the mean "
                           "over the batch of each image's loss.")
        with case(what):
            (dlogits,) = returned(np.asarray(dlogits, dtype=np.float64), "softmax_cross_entropy",
                                  [("dlogits", (n, k))])
        loss = float(loss)
        if not (np.isclose(loss, expected_loss, rtol=1e-6, atol=1e-9)
                and np.allclose(dlogits, expected_grad, rtol=1e-6, atol=1e-9)):
            raise Mismatch(f"for {what}: your loss {loss:.6g}, tinyresnet's cross_entropy {expected_loss:.6g}; "
                           f"dlogits[0] yours {np.array2string(dlogits[0], precision=4)}, expected "
                           f"{np.array2string(expected_grad[0], precision=4)}\n"
                           f"hint: {_cross_entropy_slip(loss, dlogits, expected_loss, expected_grad, logits, labels)}")

        def op(t):
            loss, grad = softmax_cross_entropy(t.data, labels)
            return Tensor.from_op(np.asarray(loss, dtype=t.dtype), (t,), lambda g: (g * grad,), "cross_entropy")
        if scale < 100:   # central differences of a loss near 0 or 1000 are all rounding
            with case(what):
                worst = max(worst, gradcheck(op, logits, name=f"softmax_cross_entropy, {what}"))
    return (f"{len(CROSS_ENTROPY_CASES)} cases equal tinyresnet's cross_entropy, scores of ±1000 "
            f"included; gradcheck worst relative error {worst:.1e}")
