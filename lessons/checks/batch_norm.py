"""Lesson 03 (03_batch_norm.ipynb): batch normalization, forward and backward.

check_batch_norm_forward compares the learner's forward pass with tinyresnet's batch_norm in
training and evaluation mode: its output, xhat and inv_std, the running statistics after one
and several steps, and one image alone in evaluation mode. check_batch_norm_backward
gradchecks the learner's backward pass on the shapes of tests/core/test_batchnorm.py and
compares it with the library's gradients. When a value is wrong, the message tries the usual
slips on the same numbers and names the one that gives yours.
"""
import itertools

import numpy as np

from tinyresnet import Tensor, gradcheck, no_grad
from tinyresnet.functional import batch_norm

from .harness import Mismatch, case, check, describe, returned

BN_SHAPES = [(4, 3, 2, 2), (2, 2, 1, 1), (1, 2, 3, 3)]  # as tests/core/test_batchnorm.py
EPS = 1e-5
AXES = (0, 2, 3)   # a channel's statistics run over the batch and the pixels
RTOL, ATOL = 1e-7, 1e-10   # float64 throughout: a right answer agrees to rounding


def per_channel(v):
    """(C,) -> (1, C, 1, 1), to broadcast against (N, C, H, W)."""
    return np.reshape(v, (1, -1, 1, 1))


def _close(a, b, rtol=1e-6, atol=1e-9):
    return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ the forward pass

def library(x, gamma, beta, running_mean, running_var, training, momentum=0.1):
    """tinyresnet's batch_norm on copies of the running statistics: (out, running_mean, running_var)."""
    mean, var = running_mean.copy(), running_var.copy()
    with no_grad():
        out = batch_norm(Tensor(x), Tensor(gamma), Tensor(beta), mean, var, training=training,
                         momentum=momentum, eps=EPS).data
    return out, mean, var


def normalize(x, mean, var, gamma=1.0, beta=0.0, eps=EPS):
    """gamma * (x - mean) / sqrt(var + eps) + beta, per channel: a slip's output is this with
    the wrong statistics (the helper that names slips tries it with several)."""
    return per_channel(gamma) * (x - per_channel(mean)) / np.sqrt(per_channel(var) + eps) + per_channel(beta)


def first_slip(yours, candidates):
    """The hint of the first (expected value, hint) pair that yours equals, or None."""
    return next((hint for value, hint in candidates if _close(yours, value)), None)


def differs(what, yours, expected, hint, against="tinyresnet's batch_norm"):
    """A Mismatch that shows where yours and expected differ most (a NaN counts as most), with a hint."""
    yours, expected = np.asarray(yours, dtype=float), np.asarray(expected, dtype=float)
    gap = np.abs(yours - expected)
    i = np.unravel_index(np.argmax(np.where(np.isnan(gap), np.inf, gap)), expected.shape)
    where = f" at index {tuple(int(j) for j in i)}" if expected.ndim else ""
    a, b = float(yours[i]), float(expected[i])
    return Mismatch(f"{what} differs from {against}{where}:\n"
                    f"  yours    = {a:.6g}\n  expected = {b:.6g}\n"
                    f"  relative error = {abs(a - b) / max(abs(a), abs(b), 1e-12):.3g}\nhint: {hint}")


def compare(what, yours, expected, slips=(), otherwise=""):
    """Raise a Mismatch naming the slip (the first of `slips` that gives yours) unless yours
    equals expected to rounding."""
    if not np.allclose(yours, expected, rtol=RTOL, atol=ATOL):
        raise differs(what, yours, expected, first_slip(yours, slips) or otherwise)


def axes_of(shape, x_shape):
    """(axes, keepdims) such that reducing an x_shape array over axes gives shape, or None."""
    for r in range(1, len(x_shape) + 1):
        for axes in itertools.combinations(range(len(x_shape)), r):
            kept = tuple(1 if i in axes else n for i, n in enumerate(x_shape))
            dropped = tuple(n for i, n in enumerate(x_shape) if i not in axes)
            if shape in (kept, dropped):
                return axes, shape == kept and shape != dropped
    return None


def statistics_hint(shape, x_shape):
    """Why inv_std has `shape`, not (C,): which axes its statistics were taken over."""
    found = axes_of(tuple(shape), tuple(x_shape))
    if found is None:
        return f"inv_std has one value per channel: shape ({x_shape[1]},)."
    axes, keepdims = found
    if axes == AXES and keepdims:
        return ("the right axes, but keepdims=True left the shape (1, C, 1, 1); return inv_std "
                "as a (C,) vector (take the statistics without keepdims, or .reshape(-1)).")
    lesson_00 = " (lesson 00's mean image is over axis 0; batch norm is per channel)" if axes == (0,) else ""
    return (f"those statistics were taken over axes {axes}{lesson_00}. A channel's statistics pool "
            f"every image and every pixel: x.mean(axis=(0, 2, 3)) gives one value per channel, (C,).")


def returned_forward(result, x):
    """result must be (out, xhat, inv_std) with shapes x.shape, x.shape, (C,)."""
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise Mismatch(f"batch_norm_forward must return a tuple (out, xhat, inv_std), got "
                       f"{describe(result)}.\nhint: batch_norm_backward needs xhat and inv_std, so the "
                       "forward pass hands them on.")
    expected = [("out", x.shape), ("xhat", x.shape), ("inv_std", x.shape[1:2])]
    for value, (name, shape) in zip(result, expected):
        if not hasattr(value, "shape"):
            raise Mismatch(f"batch_norm_forward returned {name} = {describe(value)}; it must be an array "
                           f"of shape {shape}")
        if tuple(value.shape) != tuple(shape):
            hint = (statistics_hint(value.shape, x.shape) if name == "inv_std" else
                    "out and xhat have x's shape (N, C, H, W): a per-channel (C,) vector broadcasts "
                    "against it after .reshape(1, -1, 1, 1).")
            raise Mismatch(f"batch_norm_forward returned {name} of shape {tuple(value.shape)}, expected "
                           f"{tuple(shape)}.\nhint: {hint}")
    return result


def forward_slips(x, gamma, beta, mean, var):
    """The usual wrong outputs of a forward pass that should normalize with mean and var,
    each with the hint that names it."""
    return [
        (normalize(x, mean, var, gamma, beta, eps=0.0),
         "eps is missing: inv_std = 1 / sqrt(var + eps), with eps inside the square root."),
        (per_channel(gamma) * (x - per_channel(mean)) / (per_channel(var) + EPS) + per_channel(beta),
         "divided by the variance: divide by the standard deviation, sqrt(var + eps)."),
        (normalize(x, mean, var, beta, gamma),
         "gamma and beta are swapped: out = gamma * xhat + beta (gamma scales, beta shifts)."),
    ]


def training_out_slips(x, gamma, beta, running_before, running_after):
    """forward_slips for training mode, plus the unbiased variance and the running statistics
    (before or after this step's update: (mean, var) pairs) in place of the batch's."""
    m = x.size // x.shape[1]
    mean, var = x.mean(axis=AXES), x.var(axis=AXES)
    unbiased = ("normalized with the unbiased variance (ddof=1). Normalize with the biased one, "
                "x.var(axis=(0, 2, 3)); the factor m / (m - 1) is only for running_var.")
    running = ("in training mode normalize with the batch's own mean and variance; the running "
               "statistics are for evaluation mode.")
    return [(normalize(x, mean, var * m / (m - 1), gamma, beta), unbiased),
            (normalize(x, *running_before, gamma, beta), running),
            (normalize(x, *running_after, gamma, beta), running)] + forward_slips(x, gamma, beta, mean, var)


def eval_out_slips(x, gamma, beta, running_mean, running_var):
    """forward_slips for evaluation mode, plus normalizing with the batch's statistics."""
    batch = ("evaluation mode uses running_mean and running_var, not the batch's statistics: "
             "an image's output must not depend on the other images of its batch.")
    m = x.size // x.shape[1]
    mean, var = x.mean(axis=AXES), x.var(axis=AXES)
    return [(normalize(x, mean, var, gamma, beta), batch),
            (normalize(x, mean, var * m / (m - 1), gamma, beta), batch)] + \
        forward_slips(x, gamma, beta, running_mean, running_var)


def xhat_slips(x, out, mean, inv_std):
    return [(out, "you returned out as xhat: xhat is the normalized input, before gamma and beta."),
            (x - per_channel(mean), "xhat = (x - mean) * inv_std: the division by the standard "
                                    "deviation is missing.")]


def inv_std_slips(var):
    return [(np.sqrt(var + EPS), "that is sqrt(var + eps), the standard deviation; inv_std is its inverse."),
            (1 / np.sqrt(var), "eps is missing: inv_std = 1 / sqrt(var + eps)."),
            (1 / (var + EPS), "the square root is missing: inv_std = 1 / sqrt(var + eps).")]


def running_slips(name, start, mean, var, m, n, momentum):
    """Wrong running_mean (name "running_mean") or running_var after one step from `start`,
    for a batch with per-channel mean and biased var, m values per channel in n images."""
    batch = mean if name == "running_mean" else var * m / (m - 1)
    slips = [(start, f"{name} did not change: update it in place (running_mean[...] = ..., or "
                     f"running_mean *= ...; running_mean += ...). A plain `{name} = ...` only makes "
                     f"your local name point at a new array; the caller's array stays as it was."),
             (momentum * start + (1 - momentum) * batch,
              f"momentum is applied the wrong way round: {name} = (1 - momentum) * {name} + momentum "
              f"* batch statistic. momentum = {momentum} is the weight of the NEW batch, the old value "
              f"keeps {1 - momentum:g} of its weight (PyTorch's convention).")]
    if name == "running_var":
        slips += [((1 - momentum) * start + momentum * var,
                   f"biased running variance: running_var stores the unbiased estimate, the batch "
                   f"variance times m / (m - 1), with m = N*H*W = {m} values per channel."),
                  ((1 - momentum) * start + momentum * var * n / (n - 1),
                   f"m counts every value of a channel, N*H*W = {m}, not the {n} images: the unbiased "
                   f"factor is m / (m - 1)."),
                  ((1 - momentum) * start + momentum * var * (m * len(var)) / (m * len(var) - 1),
                   f"m counts the values of ONE channel, N*H*W = {m}, not all of x, x.size = N*C*H*W = "
                   f"{m * len(var)}: the unbiased factor is m / (m - 1) with m = x.size // C.")]
    return slips


RUNNING_RULE = ("running = (1 - momentum) * running + momentum * batch statistic, per channel, in "
                "place; running_var takes the batch's unbiased variance (times m / (m - 1)).")


def forward_inputs(rng, shape):
    """x, gamma, beta, running_mean, running_var: everything away from its default value."""
    c = shape[1]
    return (rng.standard_normal(shape) * 0.5 + 1, rng.uniform(0.5, 2.0, c), rng.standard_normal(c),
            rng.uniform(-1.0, 1.0, c), rng.uniform(0.5, 2.0, c))


FORWARD_SHAPE_HINT = ("x is (N, C, H, W); gamma, beta, running_mean, running_var and inv_std are (C,). "
                      "A channel's statistics pool every image and every pixel: x.mean(axis=(0, 2, 3)) "
                      "is (C,). Reshape a (C,) vector to (1, C, 1, 1) to broadcast it against x.")


def check_training_step(batch_norm_forward, rng):
    """One training step on a (4, 3, 5, 6) batch: out, xhat, inv_std and the running statistics."""
    x, gamma, beta, mean0, var0 = forward_inputs(rng, (4, 3, 5, 6))
    mean, var = mean0.copy(), var0.copy()
    with case("training mode, a (4, 3, 5, 6) batch"):
        out, xhat, inv_std = returned_forward(batch_norm_forward(x, gamma, beta, mean, var, training=True), x)
        expected, expected_mean, expected_var = library(x, gamma, beta, mean0, var0, training=True)
        compare("out", out, expected,
                training_out_slips(x, gamma, beta, (mean0, var0), (expected_mean, expected_var)),
                "out = gamma * (x - mean) / sqrt(var + eps) + beta, with the batch's mean and biased variance.")
        compare("xhat", xhat, library(x, np.ones(3), np.zeros(3), mean0, var0, training=True)[0],
                xhat_slips(x, out, x.mean(axis=AXES), inv_std), "xhat = (x - mean) * inv_std.")
        compare("inv_std", inv_std, 1 / np.sqrt(x.var(axis=AXES) + EPS), inv_std_slips(x.var(axis=AXES)),
                "inv_std = 1 / sqrt(var + eps), var the batch's biased variance.")
        m, n = x.size // x.shape[1], x.shape[0]
        for name, yours, start, right in [("running_mean", mean, mean0, expected_mean),
                                          ("running_var", var, var0, expected_var)]:
            compare(f"{name} after one step", yours, right,
                    running_slips(name, start, x.mean(axis=AXES), x.var(axis=AXES), m, n, 0.1), RUNNING_RULE)


def check_training_steps(batch_norm_forward, rng, steps=5, momentum=0.2):
    """Running statistics after several steps from the default start (0 and 1), momentum 0.2."""
    mine, theirs, at_default = [np.zeros(3), np.ones(3)], [np.zeros(3), np.ones(3)], [np.zeros(3), np.ones(3)]
    with case(f"training mode, {steps} steps with momentum={momentum}"):
        for _ in range(steps):
            x, gamma, beta, _, _ = forward_inputs(rng, (8, 3, 4, 4))
            batch_norm_forward(x, gamma, beta, *mine, training=True, momentum=momentum)
            theirs = library(x, gamma, beta, *theirs, training=True, momentum=momentum)[1:]
            at_default = library(x, gamma, beta, *at_default, training=True)[1:]
        ignored = (f"your {steps} steps moved the statistics as momentum 0.1 would: use the `momentum` "
                   f"argument, not a fixed 0.1.")
        for name, yours, right, default in zip(("running_mean", "running_var"), mine, theirs, at_default):
            compare(f"{name} after {steps} steps", yours, right, [(default, ignored)], RUNNING_RULE)


def check_eval(batch_norm_forward, rng):
    """Evaluation mode: a (4, 3, 5, 6) batch, then its first image alone; nothing updated."""
    x, gamma, beta, mean0, var0 = forward_inputs(rng, (4, 3, 5, 6))
    mean, var = mean0.copy(), var0.copy()
    with case("evaluation mode, a (4, 3, 5, 6) batch"):
        out, xhat, inv_std = returned_forward(batch_norm_forward(x, gamma, beta, mean, var, training=False), x)
        compare("out", out, library(x, gamma, beta, mean0, var0, training=False)[0],
                eval_out_slips(x, gamma, beta, mean0, var0),
                "out = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.")
        compare("xhat", xhat, library(x, np.ones(3), np.zeros(3), mean0, var0, training=False)[0],
                xhat_slips(x, out, mean0, inv_std), "xhat = (x - running_mean) * inv_std.")
        compare("inv_std", inv_std, 1 / np.sqrt(var0 + EPS), inv_std_slips(var0),
                "in evaluation mode inv_std = 1 / sqrt(running_var + eps).")
        for name, yours, start in [("running_mean", mean, mean0), ("running_var", var, var0)]:
            if not np.array_equal(yours, start):
                raise Mismatch(f"evaluation mode changed {name}: it must be left as it was.\nhint: only "
                               "training-mode steps update the running statistics.")
    with case("evaluation mode, one image alone, shape (1, 3, 5, 6)"):
        alone = returned_forward(batch_norm_forward(x[:1], gamma, beta, mean, var, training=False), x[:1])[0]
        compare("out for one image alone", alone, library(x[:1], gamma, beta, mean0, var0, training=False)[0],
                eval_out_slips(x[:1], gamma, beta, mean0, var0))
        if not np.allclose(alone, out[:1], rtol=RTOL, atol=ATOL):
            raise differs("out for image 0 alone", alone, out[:1], "in evaluation mode an image's "
                          "output must not depend on the other images of its batch.",
                          against="its out inside the batch of 4")


@check("batch_norm_forward", shape_hint=FORWARD_SHAPE_HINT)
def check_batch_norm_forward(batch_norm_forward):
    rng = np.random.default_rng(0)
    check_training_step(batch_norm_forward, rng)
    check_training_steps(batch_norm_forward, rng)
    check_eval(batch_norm_forward, rng)
    return ("out, xhat and inv_std equal tinyresnet's batch_norm in training and evaluation mode; "
            "running statistics right after 1 and 5 steps, unchanged in evaluation mode; "
            "one image alone in evaluation mode")


# ------------------------------------------------------------------ the backward pass

def normalized(x):
    """(xhat, inv_std) of x: (N, C, H, W) in training mode: xhat from tinyresnet's batch_norm
    (with gamma = 1, beta = 0), inv_std = 1 / sqrt(batch variance + eps) per channel (C,)."""
    c = x.shape[1]
    with no_grad():
        xhat = batch_norm(Tensor(x), Tensor(np.ones(c)), Tensor(np.zeros(c)),
                          np.zeros(c), np.ones(c), training=True, eps=EPS).data
    return xhat, 1 / np.sqrt(x.var(axis=AXES) + EPS)


def batch_norm_from(backward_fn):
    """tinyresnet's training-mode batch norm with its backward pass replaced by yours,
    backward_fn(g, xhat, gamma, inv_std) -> (dx, dgamma, dbeta)."""
    def bn(x, gamma, beta):
        c = x.shape[1]
        with no_grad():
            out = batch_norm(x, gamma, beta, np.zeros(c), np.ones(c), training=True, eps=EPS).data
        xhat, inv_std = normalized(x.data)
        return Tensor.from_op(out, (x, gamma, beta),
                              lambda g: backward_fn(g, xhat, gamma.data, inv_std), "batch_norm")
    return bn


def inputs(rng, shape):
    """x, gamma, beta with gamma and beta away from their 1 and 0 defaults."""
    c = shape[1]
    return rng.standard_normal(shape) * 2 + 1, rng.uniform(0.5, 2.0, c), rng.standard_normal(c)


def batch_norm_slip(batch_norm_backward):
    """The usual slip in batch_norm_backward, found by comparing with the terms of the right answer."""
    rng = np.random.default_rng(7)
    x, gamma, _ = inputs(rng, (4, 3, 3, 3))
    xhat, inv_std = normalized(x)
    g = rng.standard_normal(x.shape)
    dx, dgamma, dbeta = batch_norm_backward(g, xhat, gamma, inv_std)
    scale = (gamma * inv_std).reshape(1, -1, 1, 1)
    mean_g = g.mean(axis=AXES, keepdims=True)
    mean_gx = (g * xhat).mean(axis=AXES, keepdims=True)
    if _close(dgamma, g.sum(axis=AXES)) and _close(dbeta, (g * xhat).sum(axis=AXES)):
        return ("dgamma and dbeta are swapped: you returned (dx, dbeta, dgamma). Return them in the "
                "order of the arguments, (dx, dgamma, dbeta); both are (C,), so their shapes cannot tell.")
    if not _close(dbeta, g.sum(axis=AXES)):
        return "dbeta: beta is added to every value of its channel, so dbeta sums g over axes (0, 2, 3)."
    if not _close(dgamma, (g * xhat).sum(axis=AXES)):
        return "dgamma: gamma multiplies xhat, so dgamma sums g * xhat over axes (0, 2, 3)."
    if _close(dx, scale * g):
        return ("dx = gamma * inv_std * g is the evaluation-mode gradient. In training mode the batch's "
                "mean and variance depend on every x as well: both paths add a term.")
    if _close(dx, scale * (g - mean_g)):
        return "the path through the batch variance is missing: the term - xhat * mean(g * xhat)."
    if _close(dx, scale * (g - xhat * mean_gx)):
        return "the path through the batch mean is missing: the term - mean(g) per channel."
    return ("dx = gamma * inv_std * (g - mean(g) - xhat * mean(g * xhat)), the means per channel over "
            "axes (0, 2, 3): compare your dx with each term.")


SHAPE_HINT = ("g and xhat are (N, C, H, W); gamma, inv_std, dgamma and dbeta are (C,). Sum over axes "
              "(0, 2, 3) to get a (C,) vector, and reshape a (C,) vector to (1, C, 1, 1) to broadcast it; "
              "that goes for the means inside dx too (mean(g), mean(g * xhat)): take them with "
              "keepdims=True, shape (1, C, 1, 1), or reshape them before combining them with g.")


@check("batch_norm_backward", shape_hint=SHAPE_HINT, value_hint=batch_norm_slip)
def check_batch_norm_backward(batch_norm_backward):
    rng, worst = np.random.default_rng(0), 0.0
    x, gamma, beta = inputs(rng, (2, 3, 4, 4))
    xhat, inv_std = normalized(x)
    with case("a (2, 3, 4, 4) batch"):
        returned(batch_norm_backward(rng.standard_normal(x.shape), xhat, gamma, inv_std),
                 "batch_norm_backward", [("dx", x.shape), ("dgamma", gamma.shape), ("dbeta", beta.shape)])
    op = batch_norm_from(batch_norm_backward)
    for shape in BN_SHAPES:
        where = f"batch_norm training {shape}"
        with case(where):
            worst = max(worst, gradcheck(op, *inputs(rng, shape), name=where, arg_names=("x", "gamma", "beta")))
    # the same gradients as the library's batch_norm, on a bigger batch
    x, gamma, beta = inputs(rng, (8, 4, 5, 5))
    u = rng.standard_normal(x.shape)
    tx, tg, tb = (Tensor(a, requires_grad=True) for a in (x, gamma, beta))
    batch_norm(tx, tg, tb, np.zeros(4), np.ones(4), training=True, eps=EPS).backward(u)
    xhat, inv_std = normalized(x)
    with case("an (8, 4, 5, 5) batch"):
        mine = batch_norm_backward(u, xhat, gamma, inv_std)
    for name, yours, theirs in zip(("dx", "dgamma", "dbeta"), mine, (tx.grad, tg.grad, tb.grad)):
        if not np.allclose(yours, theirs, rtol=1e-6, atol=1e-8):
            raise Mismatch(f"{name} differs from tinyresnet's batch_norm on an (8, 4, 5, 5) batch: "
                           f"largest difference {np.abs(yours - theirs).max():.3g}\n"
                           f"hint: {batch_norm_slip(batch_norm_backward)}")
    return (f"gradcheck on {len(BN_SHAPES)} shapes (worst relative error {worst:.1e}); "
            "dx, dgamma, dbeta equal tinyresnet's batch_norm")
