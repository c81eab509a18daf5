"""The check cells of 03_batch_norm.ipynb reject wrong batch norm code, and say why.

tests/lessons/test_lessons.py proves that the worked solutions pass every check. This file
proves the other half for that lesson: planted wrong versions of
`batch_norm_forward` and `batch_norm_backward` make their checks print "✗ FAILED" with a
message that names the slip, and return False.
"""
import functools

import pytest

from checks import batch_norm
from checks.harness import FAILED, PASSED
from solutions.batch_norm import batch_norm_backward, batch_norm_forward

pytestmark = pytest.mark.lessons

AXES = (0, 2, 3)


def rejects(capsys, check, *fns, says=()):
    """The check must fail and its message must contain every phrase in `says`."""
    ok = check(*fns)
    out = capsys.readouterr().out
    assert ok is False and out.startswith(FAILED), f"the check did not reject the planted bug:\n{out}"
    for phrase in says:
        assert phrase in out, f"the message should say {phrase!r}; it said:\n{out}"
    return out


# ------------------------------------------------------------------ batch_norm_forward

def forward_with(slip, x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """batch_norm_forward as a learner might write it, with one slip planted (slip=None: right)."""
    def c(v):
        return v.reshape(1, -1, 1, 1)
    m = x.size if slip == "m counts all of x" else x.size // x.shape[1]
    axes = 0 if slip == "mean over the images only" else AXES
    keepdims = slip == "keepdims"
    if training or slip == "batch statistics in eval mode":
        mean, var = x.mean(axis=axes, keepdims=keepdims), x.var(axis=axes, keepdims=keepdims)
        if slip == "unbiased variance in the normalization":
            var = x.var(axis=axes, ddof=1)
    if training:
        momentum = 0.1 if slip == "momentum fixed at 0.1" else momentum
        new, old = momentum, 1 - momentum          # the weights of the batch and of the old value
        if slip == "momentum the wrong way round":
            new, old = old, new
        if keepdims:                 # flattened for the running statistics only
            mean, var = mean.reshape(-1), var.reshape(-1)
        unbiased = var if slip == "biased running variance" else var * m / (m - 1)
        if slip == "running statistics rebound, not updated":
            running_mean = old * running_mean + new * mean
            running_var = old * running_var + new * unbiased
        else:
            running_mean[...] = old * running_mean + new * mean
            running_var[...] = old * running_var + new * unbiased
    elif slip != "batch statistics in eval mode":
        mean, var = running_mean, running_var
    if keepdims:                     # ... but kept (1, C, 1, 1) for the rest
        mean, var = mean.reshape(1, -1, 1, 1), var.reshape(1, -1, 1, 1)
    inv_std = 1 / (var + eps) ** 0.5
    if keepdims or axes == 0:       # statistics that already broadcast against x
        xhat = (x - mean) * inv_std
    else:
        xhat = (x - c(mean)) * c(inv_std)
    return c(gamma) * xhat + c(beta), xhat, inv_std


def planted(slip):
    fn = functools.partial(forward_with, slip)
    fn.__name__ = "batch_norm_forward"
    return fn


def test_the_forward_check_passes_the_solution_and_the_unslipped_plant(capsys):
    for fn in (batch_norm_forward, planted(None)):
        ok = batch_norm.check_batch_norm_forward(fn)
        out = capsys.readouterr().out
        assert ok is True and out.startswith(PASSED), out


@pytest.mark.parametrize("slip, says", [
    ("biased running variance", ["running_var after one step differs", "biased running variance",
                                 "m / (m - 1), with m = N*H*W = 120"]),
    ("m counts all of x", ["running_var after one step differs", "not all of x, x.size = N*C*H*W = 360"]),
    ("momentum the wrong way round", ["running_mean after one step differs",
                                      "momentum is applied the wrong way round"]),
    ("batch statistics in eval mode", ["case: evaluation mode, a (4, 3, 5, 6) batch", "out differs",
                                       "evaluation mode uses running_mean and running_var"]),
    ("mean over the images only", ["case: training mode", "could not be broadcast", "x.mean(axis=(0, 2, 3))"]),
    ("keepdims", ["inv_std of shape (1, 3, 1, 1), expected (3,)", "keepdims=True"]),
    ("running statistics rebound, not updated", ["running_mean did not change: update it in place"]),
    ("momentum fixed at 0.1", ["case: training mode, 5 steps with momentum=0.2", "use the `momentum` argument"]),
    ("unbiased variance in the normalization", ["out differs", "normalized with the unbiased variance"]),
])
def test_batch_norm_forward_rejects(capsys, slip, says):
    rejects(capsys, batch_norm.check_batch_norm_forward, planted(slip), says=says)


def test_statistics_hint_names_the_axes():
    """A wrong inv_std shape is traced back to the axes its statistics were taken over."""
    assert "axes (0,)" in batch_norm.statistics_hint((3, 5, 6), (4, 3, 5, 6))
    assert "lesson 00" in batch_norm.statistics_hint((3, 5, 6), (4, 3, 5, 6))
    assert "axes (2, 3)" in batch_norm.statistics_hint((4, 3), (4, 3, 5, 6))
    assert "keepdims" in batch_norm.statistics_hint((1, 3, 1, 1), (4, 3, 5, 6))


# ------------------------------------------------------------------ batch_norm_backward

def bn_eval_mode_dx(g, xhat, gamma, inv_std):
    """The evaluation-mode gradient: the paths through the batch statistics are left out."""
    scale = (gamma * inv_std).reshape(1, -1, 1, 1)
    return scale * g, (g * xhat).sum(axis=AXES), g.sum(axis=AXES)


def bn_no_variance_path(g, xhat, gamma, inv_std):
    scale = (gamma * inv_std).reshape(1, -1, 1, 1)
    return scale * (g - g.mean(axis=AXES, keepdims=True)), (g * xhat).sum(axis=AXES), g.sum(axis=AXES)


def bn_keepdims(g, xhat, gamma, inv_std):
    """Right numbers, but dgamma and dbeta keep their (1, C, 1, 1) shape."""
    dx, dgamma, dbeta = batch_norm_backward(g, xhat, gamma, inv_std)
    return dx, dgamma.reshape(1, -1, 1, 1), dbeta.reshape(1, -1, 1, 1)


def bn_means_without_keepdims(g, xhat, gamma, inv_std):
    scale = (gamma * inv_std).reshape(1, -1, 1, 1)
    dx = scale * (g - g.mean(axis=AXES) - xhat * (g * xhat).mean(axis=AXES))   # (C,) means: no broadcast
    return dx, (g * xhat).sum(axis=AXES), g.sum(axis=AXES)


def bn_swapped(g, xhat, gamma, inv_std):
    """Right numbers in the wrong order, (dx, dbeta, dgamma): both are (C,), so shapes cannot tell."""
    dx, dgamma, dbeta = batch_norm_backward(g, xhat, gamma, inv_std)
    return dx, dbeta, dgamma


@pytest.mark.parametrize("fn, says", [
    (bn_eval_mode_dx, ["evaluation-mode gradient", "case: batch_norm training (4, 3, 2, 2)"]),
    (bn_no_variance_path, ["path through the batch variance is missing"]),
    (bn_keepdims, ["dgamma of shape (1, 3, 1, 1), expected (3,)"]),
    (bn_means_without_keepdims, ["could not be broadcast", "the means inside dx too", "keepdims=True"]),
    (bn_swapped, ["gradient of gamma (argument 1)", "dgamma and dbeta are swapped",
                  "you returned (dx, dbeta, dgamma)"]),
])
def test_batch_norm_backward_rejects(capsys, fn, says):
    rejects(capsys, batch_norm.check_batch_norm_backward, fn, says=says)
