"""Lesson 03 (03_batch_norm.ipynb): the backward pass of batch normalization in training mode.

The forward pass is tinyresnet's own batch_norm; the backward is the learner's function,
gradchecked on the shapes of tests/test_batchnorm.py and compared with the library's gradients.
"""
import numpy as np

from tinyresnet import Tensor, gradcheck, no_grad
from tinyresnet.functional import batch_norm

from .harness import Mismatch, case, check, returned

BN_SHAPES = [(4, 3, 2, 2), (2, 2, 1, 1), (1, 2, 3, 3)]  # as tests/test_batchnorm.py
EPS = 1e-5
AXES = (0, 2, 3)   # a channel's statistics run over the batch and the pixels


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


def _close(a, b):
    return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-6, atol=1e-9)


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
              "(0, 2, 3) to get a (C,) vector, and reshape a (C,) vector to (1, C, 1, 1) to broadcast it.")


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
            worst = max(worst, gradcheck(op, *inputs(rng, shape), name=where))
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
